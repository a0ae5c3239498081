"""The schema of homeserver.yaml: every key the server reads, its default and its documentation.

Key names follow Synapse's where the meaning is the same, so admins moving over recognise
them. The docs here are printed as comments in the generated sample file, so they are
written for the admin reading that file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from config.schema import (
    MISSING,
    Bool,
    Duration,
    FilePath,
    Int,
    Invalid,
    IPAddress,
    KeyPath,
    ListOf,
    OneOf,
    Rate,
    Scalar,
    Section,
    ServerName,
    Size,
    Str,
    Url,
    Variant,
)
from config.residency import BACKUP_DIRECTORIES, DATA_RESIDENCY, check_residency, location
from config.undelivered import UNDELIVERED_TTL
from config.voip import TURN_KEYS, check_turn
from config.push import PUSH
from config.retention import MEDIA_RETENTION, RETENTION
from config.privacy_policy import (
    FORM_SECRET, PRIVACY_POLICY, REQUIRE_CONSENT, SERVER_NOTICES, check_consent_needs_policy,
)

WILDCARD_ADDRESSES = ("0.0.0.0", "::")

# Connection keywords libpq understands besides the typed psycopg2 args below; anything else
# under database.args is a typo, reported with a suggestion.
LIBPQ_KEYWORDS = (
    "hostaddr", "dbname", "passfile", "require_auth", "channel_binding", "connect_timeout",
    "client_encoding", "options", "fallback_application_name", "keepalives", "keepalives_idle",
    "keepalives_interval", "keepalives_count", "tcp_user_timeout", "replication", "gssencmode",
    "requiressl", "sslnegotiation", "sslcompression", "sslcert", "sslkey", "sslpassword",
    "sslcertmode", "sslrootcert", "sslcrl", "sslcrldir", "sslsni", "requirepeer",
    "ssl_min_protocol_version", "ssl_max_protocol_version", "krbsrvname", "gsslib",
    "gssdelegation", "service", "target_session_attrs", "load_balance_hosts",
)  # fmt: skip


def _http_listener_has_resources(values: Mapping[str, Any], path: KeyPath) -> None:
    if values["type"] == "http" and not values["resources"]:
        raise Invalid(
            (*path, "resources"),
            "an http listener needs at least one resource, e.g. [{names: [client, federation]}]",
        )


LISTENER_RESOURCE = Section(
    "ListenerResource",
    {
        "names": ListOf(
            OneOf("client", "federation", "keys", "media", "metrics", "openid", "health", "consent"),
            min_items=1,
            required=True,
            doc="""
            Which APIs this listener serves: client (the client-server API, /_matrix/client),
            federation (the server-server API, /_matrix/federation), keys (this server's
            signing keys, /_matrix/key), media (/_matrix/media), metrics (Prometheus),
            openid (the OpenID user-info endpoint), health (/health, for load balancers) and
            consent (the privacy policy's consent page, /_matrix/consent; client serves it too).
            """,
        ),
        "compress": Bool(default=False, doc="Whether to gzip responses that are worth compressing."),
    },
)

LISTENER = Section(
    "ListenerConfig",
    {
        "port": Int(min=0, max=65535, required=True, doc="TCP port to listen on (0 picks a free port, for tests)."),
        "bind_addresses": ListOf(
            IPAddress(),
            min_items=1,
            default=["127.0.0.1"],
            doc="Local IP addresses to listen on; '::' and '0.0.0.0' mean all interfaces.",
        ),
        "type": OneOf(
            "http",
            "metrics",
            default="http",
            doc="'http' serves the APIs named in resources; 'metrics' serves only Prometheus metrics.",
        ),
        "tls": Bool(
            default=False,
            doc="""
            Whether to serve TLS on this port with tls_certificate_path and
            tls_private_key_path. Leave it off behind a reverse proxy that terminates TLS.
            """,
        ),
        "x_forwarded": Bool(
            default=False,
            doc="Whether to trust the X-Forwarded-For header for the client's address (behind a reverse proxy).",
        ),
        "resources": ListOf(
            LISTENER_RESOURCE,
            default=[],
            doc="Groups of APIs to serve, each with its own compression setting (not needed for type metrics).",
        ),
    },
    checks=[_http_listener_has_resources],
)

SQLITE_ARGS = Section(
    "SqliteArgs",
    {
        "database": FilePath(
            required=True,
            keep=(":memory:",),
            doc="The database file (relative to this file's directory), or ':memory:' for a throw-away database.",
        ),
    },
    as_dict=True,
)

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def _pool_bounds(values: Mapping[str, Any], path: KeyPath) -> None:
    if values["cp_min"] > values["cp_max"]:
        raise Invalid((*path, "cp_min"), f"must not be more than cp_max ({values['cp_max']}), got {values['cp_min']}")


PSYCOPG2_ARGS = Section(
    "Psycopg2Args",
    {
        "user": Str(doc="The PostgreSQL role to connect as."),
        "password": Str(doc="The role's password.", secret=True),
        "database": Str(required=True, doc="The name of the database."),
        "host": Str(doc="Host name, IP address, or directory of the Unix socket."),
        "port": Int(min=1, max=65535, doc="TCP port (PostgreSQL's default is 5432)."),
        "cp_min": Int(min=1, default=5, doc="Fewest connections the pool keeps open."),
        "cp_max": Int(min=1, default=10, doc="Most connections the pool opens."),
        "sslmode": OneOf(*SSL_MODES, doc="libpq's sslmode: " + ", ".join(SSL_MODES) + "."),
        "application_name": Str(doc="The name shown in pg_stat_activity."),
    },
    doc="Any other libpq connection keyword (connect_timeout, sslrootcert, ...) is passed on as is.",
    extra=Scalar(),
    extra_keys=LIBPQ_KEYWORDS,
    as_dict=True,
    checks=[_pool_bounds],
)

DATABASE = Section(
    "DatabaseConfig",
    {
        "name": OneOf(
            "sqlite3",
            "psycopg2",
            required=True,
            doc="""
            The database engine: sqlite3 (embedded, nothing to install, for small
            servers and trials) or psycopg2 (PostgreSQL, for production).
            """,
        ),
        "args": Variant(
            on="name",
            cases={"sqlite3": SQLITE_ARGS, "psycopg2": PSYCOPG2_ARGS},
            secret=True,  # may hold the database password: kept out of repr()
            doc="Connection arguments of the engine.",
        ),
        "allow_unsafe_locale": Bool(
            default=False,
            doc="""
            PostgreSQL only: start even though the database's collation is not C. Other
            collations can change how text sorts between versions and corrupt indexes.
            """,
        ),
        "location": location("Where the database is stored (its server's disks), checked against data_residency."),
    },
    default={"name": "sqlite3", "args": {"database": "homeserver.db"}},
    doc="Where the server keeps its data.",
)

PASSWORD_POLICY = Section(
    "PasswordPolicy",
    {
        "minimum_length": Int(min=0, default=0, doc="Shortest password accepted."),
        "require_digit": Bool(default=False, doc="Whether a password needs a digit."),
        "require_symbol": Bool(default=False, doc="Whether a password needs a symbol."),
        "require_lowercase": Bool(default=False, doc="Whether a password needs a lowercase letter."),
        "require_uppercase": Bool(default=False, doc="Whether a password needs an uppercase letter."),
    },
    doc="Rules a new password must follow, for registration and password changes.",
)

PASSWORD_CONFIG = Section(
    "PasswordConfig",
    {
        "enabled": Bool(default=True, doc="Whether users can log in with a password."),
        "pepper": Str(
            allow_empty=True,
            default="",
            secret=True,
            doc="""
            A secret added to every password before hashing, kept out of the database.
            Changing it makes every existing password stop working.
            """,
        ),
        "policy": PASSWORD_POLICY,
    },
    doc="Password login and the rules passwords must follow.",
)


def _listener_tls_needs_files(values: Mapping[str, Any], path: KeyPath) -> None:
    has_cert = values["tls_certificate_path"] is not None
    has_key = values["tls_private_key_path"] is not None
    if has_cert != has_key:
        missing = "tls_private_key_path" if has_cert else "tls_certificate_path"
        present = "tls_certificate_path" if has_cert else "tls_private_key_path"
        raise Invalid((*path, missing), f"missing required key: {present} is set, and TLS needs both")
    for index, listener in enumerate(values["listeners"]):
        if listener.tls and not has_cert:
            raise Invalid(
                ("listeners", index, "tls"),
                "tls: true needs tls_certificate_path and tls_private_key_path at the top level",
            )


def _listener_ports_unique(values: Mapping[str, Any], path: KeyPath) -> None:
    seen: dict[int, tuple[int, set[str]]] = {}
    for index, listener in enumerate(values["listeners"]):
        if listener.port == 0:
            continue
        addresses = set(listener.bind_addresses)
        if listener.port in seen:
            other, other_addresses = seen[listener.port]
            overlap = (
                addresses & other_addresses
                or addresses & set(WILDCARD_ADDRESSES)
                or other_addresses & set(WILDCARD_ADDRESSES)
            )
            if overlap:
                raise Invalid(
                    ("listeners", index, "port"),
                    f"port {listener.port} is already used by listeners[{other}] on the same address",
                )
        seen[listener.port] = (index, addresses)


def _default_signing_key_path(values: Mapping[str, Any]) -> Any:
    if "server_name" not in values:
        return MISSING
    return values["server_name"].replace(":", "_") + ".signing.key"


HOMESERVER = Section(
    "HomeServerConfig",
    {
        "server_name": ServerName(
            required=True,
            doc="""
            The name of this server: the part after ':' in user IDs (@alice:example.com)
            and room aliases. It cannot be changed once users exist. It may carry a port
            (localhost:8448).
            """,
        ),
        "public_baseurl": Url(
            example="https://matrix.example.com/",
            doc="""
            The URL clients use to reach this server, if not https://<server_name>/ (for
            example when a reverse proxy serves it under another host name).
            """,
        ),
        "serve_server_wellknown": Bool(
            default=False,
            doc="""
            Whether to serve /.well-known/matrix/server, telling other servers to
            federate with public_baseurl's host and port on 443.
            """,
        ),
        "listeners": ListOf(
            LISTENER,
            min_items=1,
            required=True,
            doc="The ports the server listens on and what each one serves.",
        ),
        "tls_certificate_path": FilePath(
            example="/etc/piman/tls/fullchain.pem",
            doc="PEM certificate chain for listeners with tls: true.",
        ),
        "tls_private_key_path": FilePath(
            example="/etc/piman/tls/privkey.pem",
            doc="PEM private key for listeners with tls: true.",
        ),
        "database": DATABASE,
        "signing_key_path": FilePath(
            default=_default_signing_key_path,
            example="example.com.signing.key",
            doc="""
            The server's ed25519 signing key (default: <server_name>.signing.key next to
            this file, with ':' in the name replaced by '_'). Other servers trust this
            server by this key; keep it safe and readable by the server only.
            """,
        ),
        "key_refresh_interval": Duration(
            default="1d",
            positive=True,
            doc="How long other servers may cache this server's signing keys before fetching them again.",
        ),
        "data_key_path": FilePath(
            default="data.key",
            doc="""
            The organisation's data key, which seals user content at rest (messages,
            to-device payloads, media): a database dump shows metadata only. Losing it
            loses the content; keep a backup apart from the database backups.
            """,
        ),
        "media_store_path": FilePath(default="media_store", doc="Directory of uploaded media (sealed at rest)."),
        "max_upload_size": Size(default="50M", doc="Largest media upload accepted."),
        "url_preview_enabled": Bool(
            default=False,
            doc="""
            Whether clients may ask the server for URL previews. Off by default: previews
            make the server fetch third-party pages on a user's behalf.
            """,
        ),
        "url_preview_ip_range_whitelist": ListOf(
            Str(),
            default=[],
            doc="""
            CIDR ranges URL previews may fetch from even though they are private, loopback
            or link-local (which are refused otherwise).
            """,
        ),
        "max_spider_size": Size(default="10M", doc="Largest page a URL preview downloads."),
        "media": Section(
            "MediaConfig",
            {
                "user_quota": Size(
                    doc="""
                    Most bytes of media one user may keep on the server; an upload past it is
                    refused with M_RESOURCE_LIMIT_EXCEEDED, e.g. 1G. Unset means no quota.
                    """,
                ),
                "unused_expires_after": Duration(
                    default="24h",
                    positive=True,
                    doc="How long a media ID from POST /_matrix/media/v1/create may wait for its upload.",
                ),
                "max_pending_uploads": Int(
                    min=1,
                    default=10,
                    doc="Most media IDs one user may have created but not yet uploaded.",
                ),
            },
            doc="Media repository (uploads, downloads) settings beyond Synapse's top-level keys.",
        ),
        "enable_authenticated_media": Bool(
            default=True,
            doc="""
            Freeze the legacy unauthenticated download endpoints (/_matrix/media/v3/download,
            /thumbnail), as the spec recommends: they answer 404 M_NOT_FOUND and clients use the
            authenticated /_matrix/client/v1/media endpoints. Same key and meaning as Synapse's.
            """,
        ),
        "max_request_body_size": Size(
            default="1M",
            doc="""
            Largest JSON request body accepted by the APIs (media uploads have their own
            limit). A piman setting: Synapse has no such key.
            """,
        ),
        "enable_registration": Bool(
            default=False,
            doc="Whether anyone who can reach the server can create an account.",
        ),
        "enable_registration_without_verification": Bool(
            default=False,
            doc="""
            Accepted for compatibility with Synapse configs, which require it for open
            registration without email or phone verification; piman does not need it.
            """,
        ),
        "registration_shared_secret": Str(
            secret=True,
            example="<a long random string>",
            doc="""
            A secret that lets admin tools (Synapse's register_new_matrix_user) create
            accounts through /_synapse/admin/v1/register, even with registration off.
            Unset disables that endpoint.
            """,
        ),
        "registration_requires_token": Bool(
            default=False,
            doc="Whether registering needs a registration token made by an admin.",
        ),
        "allow_guest_access": Bool(default=False, doc="Whether guests can get accounts without registering."),
        "bcrypt_rounds": Int(
            min=4,
            max=31,
            default=12,
            doc="Cost of the bcrypt password hash: each step doubles the time to check a password.",
        ),
        "password_config": PASSWORD_CONFIG,
        "refreshable_access_token_lifetime": Duration(
            default="5m",
            positive=True,
            doc="Lifetime of access tokens given to clients that support refresh tokens.",
        ),
        "refresh_token_lifetime": Duration(
            positive=True,
            example="30d",
            doc="Lifetime of refresh tokens; unset, they do not expire.",
        ),
        "session_lifetime": Duration(
            positive=True,
            example="90d",
            doc="Time after login after which a device is logged out; unset, sessions last until logout.",
        ),
        "rc_message": Rate(0.2, 10, doc="Rate limit of messages sent, per user."),
        "rc_registration": Rate(0.17, 3, doc="Rate limit of registrations, per client IP address."),
        "rc_login": Section(
            "LoginRateLimits",
            {
                "address": Rate(0.003, 5, doc="Logins per client IP address."),
                "account": Rate(0.003, 5, doc="Logins per account."),
                "failed_attempts": Rate(0.003, 5, doc="Failed logins per account."),
            },
            doc="Rate limits of logins.",
        ),
        "rc_joins": Section(
            "JoinRateLimits",
            {
                "local": Rate(0.1, 10, doc="Joins to rooms this server is already in, per user."),
                "remote": Rate(0.01, 10, doc="Joins over federation to rooms on other servers, per user."),
            },
            doc="Rate limits of room joins.",
        ),
        "rc_invites": Section(
            "InviteRateLimits",
            {
                "per_room": Rate(0.3, 10, doc="Invites into one room."),
                "per_user": Rate(0.003, 5, doc="Invites received by one user."),
                "per_issuer": Rate(0.3, 10, doc="Invites sent by one user."),
            },
            doc="Rate limits of invites.",
        ),
        "rc_admin_redaction": Rate(
            1,
            50,
            optional=True,
            doc="Rate limit of redactions by room admins; unset, rc_message applies to them.",
        ),
        "e2ee": Section(
            "E2eeConfig",
            {
                "required": Bool(
                    default=True,
                    doc="""
                    Whether end-to-end encryption is mandatory: every room the server creates
                    is encrypted, and plaintext messages from local users are refused.
                    """,
                ),
            },
            doc="End-to-end encryption.",
        ),
        "default_room_version": OneOf(
            *[str(v) for v in range(1, 13)],
            default="12",
            doc="The room version of new rooms when a client doesn't ask for one.",
        ),
        # Data residency and undelivered messages (issue 6).
        "data_residency": DATA_RESIDENCY,
        "media_store_location": location("Where media_store_path is, checked against data_residency."),
        "export_directory": FilePath(
            example="/var/lib/piman/exports",
            doc="Directory where `piman admin export` writes its bundles (admin exports of a user or a room).",
        ),
        "export_location": location(
            """
            Where export_directory is, checked against data_residency when export_directory is
            set. piman init declares it in the pinned country, so setting export_directory is enough.
            """
        ),
        "backup_directories": BACKUP_DIRECTORIES,
        "undelivered_ttl": UNDELIVERED_TTL,
        # Message and media retention (issue 6).
        "retention": RETENTION,
        "media_retention": MEDIA_RETENTION,
        # Privacy policy consent and server notices (issue 6).
        "privacy_policy": PRIVACY_POLICY,
        "require_consent": REQUIRE_CONSENT,
        "form_secret": FORM_SECRET,
        "server_notices": SERVER_NOTICES,
        # Push notifications: the gateways the admin allows (issue 6, pushers).
        "push": PUSH,
        # TURN servers for calls (/voip/turnServer).
        **TURN_KEYS,
        "log_level": OneOf("DEBUG", "INFO", "WARNING", "ERROR", default="INFO", doc="How much the server logs."),
        "report_stats": Bool(
            default=False,
            doc="Accepted for compatibility with Synapse configs: nothing is ever reported to third parties.",
        ),
    },
    checks=[_listener_tls_needs_files, _listener_ports_unique, check_residency, check_consent_needs_policy, check_turn],
    attrs={"config_path": (str | None, None)},
    doc="The configuration of one homeserver (one organisation).",
)

HomeServerConfig = HOMESERVER.cls
