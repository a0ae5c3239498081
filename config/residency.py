"""Data residency: the country the organisation's data must stay in, and where each storage target is.

The privacy policy says "servers are hosted in France"; the server cannot see where a disk is,
so the admin declares it, once per storage target, and the server refuses to start when a
declaration is missing or names another country. `storage_targets` is the one list of targets,
shared by that check, the metrics and the admin API, so a new target is declared in one place.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from config.schema import MISSING, Context, Field, FilePath, Invalid, KeyPath, ListOf, Section, Str, describe

# ISO 3166-1 alpha-2 codes officially assigned (ISO/TC 46 N1108, 2023-04-05), as in tzdata's iso3166.tab.
ISO_3166_ALPHA_2 = frozenset("""
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS
BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE
EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM
HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC
LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA
NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
""".split())  # fmt: skip

# What `piman init` pins a new server to: it is hosted in France by default.
DEFAULT_COUNTRY = "FR"


class Country(Field):
    """An ISO 3166-1 alpha-2 country code, upper case as the standard writes it (FR, DE, ...)."""

    kind = "an ISO 3166-1 alpha-2 country code such as 'FR'"
    python_type = str

    def convert(self, value: Any, path: KeyPath, ctx: Context) -> Any:
        if not isinstance(value, str):
            raise self.expected(value, path)
        if value in ISO_3166_ALPHA_2:
            return value
        if value.upper() in ISO_3166_ALPHA_2:
            raise Invalid(path, f"country codes are upper case: write {value.upper()!r}, not {describe(value, path)}")
        if value == "UK":  # the one code people expect that ISO reserves for another use
            raise Invalid(path, "the ISO 3166-1 code of the United Kingdom is 'GB', not 'UK'")
        raise self.expected(value, path)


LOCATION = Section(
    "StorageLocation",
    {
        "country": Country(required=True, doc="Country where the data is stored (ISO 3166-1 alpha-2, e.g. FR)."),
        "provider": Str(doc="Who hosts it (e.g. the hosting company), for the data-protection officer's records."),
        "region": Str(doc="Where in the country (a provider's region or data-centre name), for the records."),
    },
    optional=True,
    doc="Where a storage target is.",
)


def location(doc: str, *, required: bool = False) -> Section:
    """A `location` mapping with its own documentation; None when absent unless `required`."""
    section = LOCATION.with_defaults(doc=doc)
    if required:
        section = copy.copy(section)
        section.required, section.optional, section.default = True, False, MISSING
    return section


DATA_RESIDENCY = Section(
    "DataResidency",
    {
        "country": Country(required=True, doc="The country every storage target must be in."),
    },
    optional=True,
    doc="""
    The country (ISO 3166-1 alpha-2 code) the organisation's data must stay in. When set,
    every storage target must declare its location in that country, or the server refuses
    to start: database.location, media_store_location, export_location (when
    export_directory is set) and the location of each of backup_directories. Unset,
    nothing is pinned: declared locations are still reported (metrics, the admin API
    /_piman/admin/v1/residency) but not checked. piman init sets it to FR, the country this
    server is hosted in by default.
    """,
)

BACKUP_DIRECTORY = Section(
    "BackupDirectory",
    {
        "path": FilePath(required=True, doc="The directory the backups are written to."),
        "location": location("Where that directory is.", required=True),
    },
)

BACKUP_DIRECTORIES = ListOf(
    BACKUP_DIRECTORY,
    default=[],
    doc="""
    Directories where the admin keeps backups of this server's data (the server never
    writes there). Declaring them, with their location, puts them under data_residency
    and in the residency report, e.g. [{path: /srv/backups, location: {country: FR}}].
    """,
)


@dataclass(frozen=True)
class StorageTarget:
    """One place the organisation's data is stored, as the config declares it."""

    target: str  # a stable name: database, media_store, export_directory, backup_directories[0]
    description: str  # how an error names it: "the media store"
    key: str  # the config key of its location: media_store_location
    path: str | None  # its directory, for filesystem targets
    location: Any  # a StorageLocation, or None when undeclared


def storage_targets(values: Mapping[str, Any]) -> list[StorageTarget]:
    """Every storage target of a config (`vars(config)`, or a section's converted values)."""
    targets = [
        StorageTarget("database", "the database", "database.location", None, values["database"].location),
        StorageTarget("media_store", "the media store", "media_store_location", values["media_store_path"],
                      values["media_store_location"]),
    ]
    if values["export_directory"] is not None:
        targets.append(StorageTarget("export_directory", "the export directory", "export_location",
                                     values["export_directory"], values["export_location"]))
    for index, backup in enumerate(values["backup_directories"]):
        name = f"backup_directories[{index}]"
        targets.append(StorageTarget(name, f"the backup directory {backup.path}", f"{name}.location", backup.path,
                                     backup.location))
    return targets


def _key_path(key: str) -> KeyPath:
    """"backup_directories[0].location" -> ("backup_directories", 0, "location")."""
    path: list[str | int] = []
    for part in key.split("."):
        name, _, index = part.partition("[")
        path.append(name)
        if index:
            path.append(int(index.rstrip("]")))
    return tuple(path)


def check_residency(values: Mapping[str, Any], path: KeyPath) -> None:
    """With data_residency set, every storage target is declared, and declared in that country."""
    residency = values["data_residency"]
    if residency is None:
        return
    for target in storage_targets(values):
        if target.location is None:
            raise Invalid(
                _key_path(target.key),
                f"missing: {target.description} must declare its location ({{country: {residency.country}}}, and "
                "optionally provider and region): every storage target must when data_residency is set",
            )
        if target.location.country != residency.country:
            raise Invalid(
                _key_path(target.key),
                f"{target.description} must be declared in {residency.country} (data_residency.country), "
                f"not {target.location.country}",
            )
