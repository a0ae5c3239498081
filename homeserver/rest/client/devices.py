"""`/devices`, `/devices/{deviceId}` and `/delete_devices`."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.handlers.sessions import check_device_fields
from homeserver.http.errors import not_found
from homeserver.http.parse import read_json_object
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer

PASSWORD_FLOWS = [["m.login.password"]]


def device_json(device: Any) -> dict[str, Any]:
    # Unknown values are sent as null rather than left out: clients such as matrix-nio require
    # every key (Synapse behaves the same).
    return {
        "device_id": device.device_id,
        "display_name": device.display_name,
        "last_seen_ip": device.last_seen_ip,
        "last_seen_ts": device.last_seen_ts,
    }


class DevicesServlet(Servlet):
    PATTERNS = client_patterns("/devices")


    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        devices = await self.hs.store.devices.get_devices(requester.user_id)
        return HTTPStatus.OK, {"devices": [device_json(d) for d in devices if not d.hidden]}


class DeviceServlet(Servlet):
    PATTERNS = client_patterns("/devices/(?P<device_id>[^/]+)")


    async def on_GET(self, request: PimanRequest, device_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        device = await self.hs.store.devices.get_device(requester.user_id, device_id)
        if device is None or device.hidden:
            raise not_found("No such device.")
        return HTTPStatus.OK, device_json(device)

    async def on_PUT(self, request: PimanRequest, device_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        body = read_json_object(request, allow_empty=True)
        display_name = body.str("display_name", None, nullable=True)
        check_device_fields(device_id, display_name)
        if not await self.hs.store.devices.update_device_display_name(requester.user_id, device_id, display_name):
            raise not_found("No such device.")
        return HTTPStatus.OK, {}

    async def on_DELETE(self, request: PimanRequest, device_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        body = read_json_object(request, allow_empty=True)
        if await self.hs.store.devices.get_device(requester.user_id, device_id) is None:
            raise not_found("No such device.")
        result = await self.hs.ui_auth.check(request, body, flows=PASSWORD_FLOWS,
                                              description="remove a device from your account", requester=requester)
        await self.hs.store.devices.delete_devices(requester.user_id, [device_id])
        await self.hs.ui_auth.finish(result.session_id)
        return HTTPStatus.OK, {}


class DeleteDevicesServlet(Servlet):
    PATTERNS = client_patterns("/delete_devices")


    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        body = read_json_object(request)
        device_ids = body.str_list("devices")
        result = await self.hs.ui_auth.check(request, body, flows=PASSWORD_FLOWS,
                                              description="remove devices from your account", requester=requester)
        await self.hs.store.devices.delete_devices(requester.user_id, device_ids)
        await self.hs.ui_auth.finish(result.session_id)
        return HTTPStatus.OK, {}


def servlets(hs: "HomeServer") -> list[Any]:
    return [DevicesServlet(hs), DeviceServlet(hs), DeleteDevicesServlet(hs)]
