"""ollamux-team-auth: callers name their team in an ``X-Team`` header; only configured
teams get in. It replaces the built-in ``auth`` plugin through the identity hooks alone.

Configure it under ``plugins.config.team_auth``::

    plugins:
      disable: [auth]
      config:
        team_auth:
          teams: [blue, red]     # the teams let in; without any, the plugin does nothing
          admin_team: blue       # optional: the one team allowed the admin actions

- ``ollamux_authenticate`` names the caller of every route after its team and refuses
  (401) a request without ``X-Team`` or with a team not configured;
- ``ollamux_permission_allowed`` keeps the admin actions (``/ollamux/*``, ``/metrics``,
  pulling and deleting models) to ``admin_team``; with no admin team, to nobody;
- ``ollamux_resolve_principal`` lets a job run as the team that submitted it, as long as
  that team is still configured;
- ``ollamux_config_reloaded`` picks up a new team list on ``SIGHUP``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ollamux import GatewayError, hookimpl
from ollamux.config import Config
from ollamux.exchange import Principal
from ollamux.gateway import Gateway
from ollamux.permissions import ADMIN, METRICS, MODELS_MANAGE

NAME = "team_auth"
HEADER = "X-Team"

log = logging.getLogger("ollamux.team_auth")

# Actions only the admin team may take.
ADMIN_ACTIONS = frozenset({ADMIN, METRICS, MODELS_MANAGE})


class TeamAuthConfigError(ValueError):
    """``plugins.config.team_auth`` is not what this plugin understands."""


@dataclass(frozen=True)
class Teams:
    """The teams let in, and the one that may administer the gateway."""

    names: frozenset[str] = frozenset()
    admin_team: str | None = None

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Teams:
        teams = settings.get("teams") or []
        if not isinstance(teams, list) or not all(isinstance(t, str) and t for t in teams):
            raise TeamAuthConfigError("plugins.config.team_auth.teams: a list of team names")
        admin_team = settings.get("admin_team")
        if admin_team is not None and admin_team not in teams:
            raise TeamAuthConfigError(
                f"plugins.config.team_auth.admin_team: {admin_team!r} is not one of the teams"
            )
        return cls(frozenset(teams), admin_team)

    @property
    def active(self) -> bool:
        return bool(self.names)

    def principal(self, team: str) -> Principal:
        return Principal(name=team, admin=team == self.admin_team, authenticated=True)


@dataclass
class TeamAuthState:
    """Per-app state (tests build many apps in one process); replaced on reload in place,
    since a running app's mapping is frozen."""

    teams: Teams


STATE: web.AppKey[TeamAuthState] = web.AppKey("ollamux_team_auth", TeamAuthState)


def teams_of(app: web.Application | None) -> Teams:
    """The teams configured for ``app`` (none before the app is built)."""
    state = app.get(STATE) if app is not None else None
    return state.teams if state is not None else Teams()


@hookimpl
def ollamux_register_routes(gateway: Gateway, app: web.Application) -> None:
    """No routes: read the settings as the app is built, so a bad list stops the start."""
    app[STATE] = TeamAuthState(Teams.from_settings(gateway.plugin_config(NAME)))


@hookimpl
def ollamux_startup(gateway: Gateway) -> None:
    teams = teams_of(gateway.app)
    if teams.active:
        log.info("team_auth: %d teams let in (%s header)", len(teams.names), HEADER)
    else:
        log.warning("team_auth: no plugins.config.team_auth.teams set; not authenticating")


@hookimpl
def ollamux_config_reloaded(gateway: Gateway, new: Config) -> None:
    state = gateway.app.get(STATE) if gateway.app is not None else None
    if state is not None:
        state.teams = Teams.from_settings(new.plugin_config(NAME))


@hookimpl
def ollamux_authenticate(request: web.Request) -> Principal | None:
    teams = teams_of(request.app)
    if not teams.active:
        return None
    team = request.headers.get(HEADER, "").strip()
    if not team:
        raise GatewayError(401, f"send {HEADER}: <your team>", code="missing_team")
    if team not in teams.names:
        raise GatewayError(401, "unknown team", code="unknown_team")
    return teams.principal(team)


@hookimpl
def ollamux_permission_allowed(
    gateway: Gateway, principal: Principal, action: str, resource: str | None
) -> bool | None:
    teams = teams_of(gateway.app)
    if not teams.active or action not in ADMIN_ACTIONS:
        return None
    return principal.authenticated and principal.name == teams.admin_team


@hookimpl
def ollamux_resolve_principal(gateway: Gateway, name: str) -> Principal | None:
    """A job's team as configured now: the jobs of a team taken off the list fail."""
    teams = teams_of(gateway.app)
    if not teams.active:
        return None
    if name not in teams.names:
        raise GatewayError(403, f"the team {name!r} is no longer let in")
    return teams.principal(name)
