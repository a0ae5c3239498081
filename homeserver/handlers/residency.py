"""Where the organisation's data is: the pinned country and each storage target's declared location.

Start-up already refused a config whose targets are undeclared or elsewhere (config/residency.py);
this reports what was declared, to Prometheus and to the admin API, so a data-protection officer
can see it without reading the YAML.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import Info

from config.residency import storage_targets

if TYPE_CHECKING:
    from homeserver.server import HomeServer


class ResidencyReport:
    def __init__(self, hs: "HomeServer") -> None:
        residency = hs.config.data_residency
        self.country: str | None = residency.country if residency is not None else None
        self.targets: list[dict[str, Any]] = []
        for target in storage_targets(vars(hs.config)):
            location = target.location
            entry: dict[str, Any] = {
                "target": target.target,
                "country": location.country if location else None,
                "provider": location.provider if location else None,
                "region": location.region if location else None,
            }
            if target.path is not None:
                entry["path"] = target.path
            self.targets.append(entry)
        self._register_metrics(hs)

    def _register_metrics(self, hs: "HomeServer") -> None:
        if self.country is not None:
            Info("piman_data_residency", "The country data_residency pins the data to.",
                 registry=hs.metrics_registry).info({"country": self.country})
        locations = Info("piman_storage_target_location",
                         "Where each storage target is declared to be (empty: undeclared).", ["target"],
                         registry=hs.metrics_registry)
        for entry in self.targets:
            locations.labels(entry["target"]).info(
                {key: entry[key] or "" for key in ("country", "provider", "region")}
            )

    def report(self) -> dict[str, Any]:
        """The admin API's answer: {"country": ..., "targets": [{"target", "country", ...}]}."""
        return {"country": self.country, "targets": [dict(entry) for entry in self.targets]}
