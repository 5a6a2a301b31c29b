"""Writes charts/keyway/values.schema.json (run by hand after changing values; the tests check
that the committed file equals this output, so the two cannot drift)."""

import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "charts" / "keyway" / "values.schema.json"


def obj(props, required=(), desc=None):
    out = {"type": "object", "additionalProperties": False, "properties": props}
    if required:
        out["required"] = list(required)
    if desc:
        out["description"] = desc
    return out


def string(desc, **kw):
    return {"type": "string", "description": desc, **kw}


DURATION = {"type": "string", "pattern": "^([0-9]{1,6}[hms]){1,4}$",
            "description": "a duration such as 10m, 720h or 1h30m"}
ISSUER_DURATION = {"type": "string", "pattern": "^([0-9]+[smhd]|([0-9]{1,6}[hms]){1,4})$",
                   "description": "a duration such as 30s, 10m, 720h, 1h30m or 30d"}
QUANTITY = {"type": ["string", "integer"],
            "pattern": "^[0-9]+(\\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$"}
PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
NAME = {"type": "string", "pattern": "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?$",
        "maxLength": 253}
PULL = {"type": "string", "enum": ["Always", "IfNotPresent", "Never"]}
LOG = {"type": "string", "enum": ["json", "text"]}
MAP = {"type": "object", "additionalProperties": {"type": "string"}}
# The binaries check the patterns exactly (IDN, IP addresses) and report every problem; this
# catches what is plainly not a host pattern, and lists of anything but namespace names.
RESOURCE_HOSTS = {
    "type": "object",
    "description": "resource hosts bound to namespaces: host pattern -> namespaces",
    "propertyNames": {"pattern": "^(\\*|(\\*\\.)?[^\\s=,/\\\\@?#%:*\\[\\]]+|\\[[0-9A-Fa-f:.]+\\])$"},
    "additionalProperties": {
        "type": "array", "minItems": 1, "uniqueItems": True,
        "items": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
    },
}
ANY_OBJ = {"type": "object"}
LIST = {"type": "array"}


def image(desc):
    return obj({
        "repository": string("image repository", minLength=1, pattern="^[^\\s:@]+(:[0-9]+)?(/[^\\s:@]+)*$"),
        "tag": string("image tag (empty: the chart's appVersion)", pattern="^([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|sha256:[a-f0-9]{64})?$"),
        "pullPolicy": PULL,
    }, required=("repository",), desc=desc)


def resources():
    rl = obj({"cpu": QUANTITY, "memory": QUANTITY})
    return obj({"requests": rl, "limits": rl})


def service_account():
    return obj({"name": NAME, "annotations": MAP})


def pdb():
    return obj({"enabled": {"type": "boolean"},
                "maxUnavailable": {"type": ["integer", "string"], "pattern": "^[0-9]+%$", "minimum": 0}})


def pod_common():
    return {
        "podAnnotations": MAP,
        "podLabels": MAP,
        "nodeSelector": MAP,
        "tolerations": LIST,
        "affinity": ANY_OBJ,
        "priorityClassName": {"type": "string"},
        "serviceAccount": service_account(),
        "pdb": pdb(),
        "resources": resources(),
    }


schema = obj({
    "nameOverride": {"type": "string", "maxLength": 40},
    "fullnameOverride": {"type": "string", "maxLength": 50},
    "imagePullSecrets": {"type": "array", "items": NAME},
    "commonLabels": MAP,
    "global": ANY_OBJ,
    "operator": obj({
        "image": image("the keyway-operator image (controller and webhook)"),
        "replicas": {"type": "integer", "minimum": 1, "maximum": 10},
        "logFormat": LOG,
        "metricsPort": PORT,
        "watchNamespace": NAME,
        "removeFinalizersOnUninstall": {"type": "boolean"},
        "resourceHosts": RESOURCE_HOSTS,
        **pod_common(),
        "webhook": obj({
            "replicas": {"type": "integer", "minimum": 1, "maximum": 10},
            "serviceAccount": service_account(),
            "shutdownDelay": DURATION,
            "topologySpreadKeys": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "topologySpreadWhenUnsatisfiable": {"type": "string", "enum": ["ScheduleAnyway", "DoNotSchedule"]},
            "pdb": pdb(),
            "port": PORT,
            "adminPort": PORT,
            "failurePolicy": {"type": "string", "enum": ["Fail", "Ignore"]},
            "timeoutSeconds": {"type": "integer", "minimum": 1, "maximum": 30},
            "excludeNamespaces": {"type": "array", "items": NAME},
            "resources": resources(),
            "certificate": obj({"validity": DURATION, "renewBefore": DURATION}),
            "certManager": obj({
                "enabled": {"type": "boolean"},
                "issuerRef": obj({"name": NAME, "kind": {"type": "string", "enum": ["Issuer", "ClusterIssuer"]},
                                  "group": {"type": "string"}}),
                "duration": DURATION,
                "caDuration": DURATION,
                "renewBefore": DURATION,
            }),
        }),
    }),
    "issuer": obj({
        "image": image("the keyway-issuer image"),
        "url": {"type": "string", "description": "the issuer's public URL",
                "pattern": "^(https://[^\\s/?#]+(/[^\\s?#]*)?|http://(127\\.0\\.0\\.1|localhost|\\[::1\\])(:[0-9]+)?(/[^\\s?#]*)?)?$"},
        "replicas": {"type": "integer", "minimum": 1, "maximum": 20},
        "logFormat": LOG,
        "port": PORT,
        "signingAlg": {"type": "string", "enum": ["ES256", "RS256", "EdDSA"]},
        "signingKeys": obj({"managed": {"type": "boolean"}, "rotation": DURATION, "publishLead": DURATION,
                            "retention": DURATION, "existingSecret": NAME}),
        "store": obj({
            "type": {"type": "string", "enum": ["sqlite", "postgres"]},
            "sqlite": obj({"size": QUANTITY, "storageClassName": {"type": "string"}, "existingClaim": NAME}),
            "postgres": obj({"existingSecret": NAME, "urlKey": {"type": "string", "minLength": 1}}),
        }),
        "staticUsers": obj({"existingSecret": NAME, "key": {"type": "string", "minLength": 1}}),
        "upstream": obj({
            "issuer": {"type": "string", "pattern": "^(https://[^\\s?#]+)?$",
                       "description": "upstream OpenID provider issuer URL (https)"},
            "clientID": {"type": "string"},
            "clientSecret": obj({"existingSecret": NAME, "key": {"type": "string", "minLength": 1}}),
            "name": {"type": "string", "minLength": 1},
            "scopes": {"type": "string", "minLength": 1},
            "groupsClaim": {"type": "string", "minLength": 1},
            "groupsPrefix": {"type": "string"},
            "insecureTrustUnverifiedEmail": {"type": "boolean"},
        }),
        "dynamicClientRegistration": obj({
            "enabled": {"type": "boolean"},
            "scopes": {"type": "string"},
            "ratePerMinute": {"type": "integer", "minimum": 1, "maximum": 10000},
            "ratePerAddressPerHour": {"type": "integer", "minimum": 1, "maximum": 10000},
            "idleExpiry": ISSUER_DURATION,
        }),
        "corsAllowedOrigins": {"type": "array", "items": {
            "type": "string", "pattern": "^https?://([a-z0-9.-]+|\\[[0-9a-f:.]+\\])(:[0-9]{1,5})?$",
            "description": "an origin such as https://spa.example (no path, not even a slash)"}},
        "trustedProxies": {"type": "array", "items": {
            "type": "string", "pattern": "^[0-9a-fA-F.:]+(/[0-9]{1,3})?$",
            "description": "an IP address or a CIDR range such as 10.0.0.0/8"}},
        "tokenLifetimes": obj({"access": ISSUER_DURATION, "refresh": ISSUER_DURATION, "refreshIdle": ISSUER_DURATION}),
        "extraEnv": {"type": "array", "items": {"type": "object", "required": ["name"]}},
        **pod_common(),
        "service": obj({"type": {"type": "string", "enum": ["ClusterIP", "NodePort", "LoadBalancer"]}, "port": PORT}),
    }),
    "sidecar": obj({
        "image": image("the keyway-proxy image injected into pods"),
        "adminPort": PORT,
        "runAsUser": {"type": "integer", "minimum": 1, "maximum": 2147483647},
        "runAsGroup": {"type": "integer", "minimum": 1, "maximum": 2147483647},
        "logFormat": LOG,
        "resources": resources(),
    }),
    "networkPolicy": obj({"enabled": {"type": "boolean"}, "metricsFrom": LIST}),
    "serviceMonitor": obj({"enabled": {"type": "boolean"}, "interval": DURATION, "labels": MAP}),
    "tenantRoles": obj({"create": {"type": "boolean"}, "aggregate": {"type": "boolean"}}),
})
schema["$schema"] = "http://json-schema.org/draft-07/schema#"
schema["title"] = "Values of the keyway Helm chart"


def render() -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    SCHEMA_PATH.write_text(render())
    print(f"wrote {SCHEMA_PATH}")
