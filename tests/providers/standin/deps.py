"""Health endpoints of the earlier system's dependencies, as each documents
them: Kong (Admin API GET /status, Status API GET /status/ready), Temporal
(HTTP API GET /api/v1/cluster-info and /api/v1/system-info), Airbyte
(GET /api/v1/health, and /health of the public API), Metabase
(GET /api/health). A test sets each one up, down, slow or dropping
connections through /_admin/deps/{name}."""

import time

from .core import CLOCK, Provider, Reply


class Dependency(Provider):
    state = "up"

    def setup(self):
        self.state = "up"
        self.started = CLOCK.now()

    def set_state(self, state):
        if state not in ("up", "down", "slow", "drop"):
            raise Reply(400, {"error": "state is up, down, slow or drop"})
        self.state = state

    def not_found(self, req):
        return Reply(404, {"message": "Not Found"})

    def handle(self, req):
        if self.state == "slow":
            time.sleep(float(self.config.get("slow_s", 5)))
        if self.state == "drop":
            r = Reply(0)
            r.close = True
            return r
        return Provider.handle(self, req)


class Kong(Dependency):
    name = "kong"
    routes = [("GET", r"/status", "status"), ("GET", r"/status/ready", "ready"), ("GET", r"/", "info")]

    def status(self, req):
        if self.state == "down":
            return Reply(503, {"message": "An unexpected error occurred",
                               "database": {"reachable": False}})
        return Reply(200, {"database": {"reachable": True},
                           "memory": {"workers_lua_vms": [{"http_allocated_gc": "25.00 MiB", "pid": 1}],
                                      "lua_shared_dicts": {}},
                           "server": {"connections_accepted": 10, "connections_active": 1,
                                      "connections_handled": 10, "connections_reading": 0,
                                      "connections_waiting": 0, "connections_writing": 1,
                                      "total_requests": 42}})

    def ready(self, req):
        if self.state == "down":
            return Reply(503, {"message": "failed to connect to database"})
        return Reply(200, {"message": "ready"})

    def info(self, req):
        return Reply(200, {"version": "3.9.0", "hostname": "kong-standin", "tagline": "Welcome to kong",
                           "node_id": "00000000-0000-4000-8000-000000000001"})


class Temporal(Dependency):
    name = "temporal"
    routes = [("GET", r"/api/v1/cluster-info", "cluster_info"), ("GET", r"/api/v1/system-info", "system_info"),
              ("GET", r"/api/v1/namespaces", "namespaces")]

    def down(self):
        return Reply(503, {"code": 14, "message": "connection error: desc = \"transport: Error while "
                                                  "dialing\"", "details": []})

    def cluster_info(self, req):
        if self.state == "down":
            return self.down()
        return Reply(200, {"supportedClients": {"temporal-go": ">=1.0.0 <2.0.0"}, "serverVersion": "1.25.2",
                           "clusterId": "00000000-0000-4000-8000-00000000c1a5", "clusterName": "active",
                           "historyShardCount": 4, "persistenceStore": "sqlite", "visibilityStore": "sqlite",
                           "versionInfo": None, "failoverVersionIncrement": "10", "initialFailoverVersion": "1"})

    def system_info(self, req):
        if self.state == "down":
            return self.down()
        return Reply(200, {"serverVersion": "1.25.2", "capabilities": {
            "signalAndQueryHeader": True, "internalErrorDifferentiation": True,
            "activityFailureIncludeHeartbeat": True, "supportsSchedules": True,
            "encodedFailureAttributes": True, "buildIdBasedVersioning": True, "upsertMemo": True,
            "eagerWorkflowStart": True, "sdkMetadata": True, "countGroupByExecutionStatus": True}})

    def namespaces(self, req):
        if self.state == "down":
            return self.down()
        return Reply(200, {"namespaces": [{"namespaceInfo": {"name": "default", "state": "NAMESPACE_STATE_REGISTERED"}}],
                           "nextPageToken": None})


class Airbyte(Dependency):
    name = "airbyte"
    routes = [("GET", r"/api/v1/health", "health"), ("GET", r"/health", "public_health"),
              ("GET", r"/api/public/v1/health", "public_health")]

    def health(self, req):
        if self.state == "down":
            return Reply(503, {"available": False})
        return Reply(200, {"available": True})

    def public_health(self, req):
        if self.state == "down":
            return Reply(503, "Unavailable", ctype="text/plain")
        return Reply(200, "Successful operation", ctype="text/plain")


class Metabase(Dependency):
    name = "metabase"
    routes = [("GET", r"/api/health", "health")]

    def health(self, req):
        if self.state == "down":
            return Reply(503, {"status": "unhealthy"})
        return Reply(200, {"status": "ok"})
