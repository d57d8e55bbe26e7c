"""The Kubernetes API stand-in's modules, by concern (standin.py is the entry point).

Each module imports only modules listed above it (in parentheses), so there is no cycle:

  errors      ApiError, the Status an error is answered with
  schema      structural schemas: defaulting, validation, list-map keys, sub-schemas
  cel         x-kubernetes-validations rules through cel-python (schema)
  apply       server-side apply: field sets, merging, ownership (schema)
  selectors   label and field selectors; Events as core/v1 and events.k8s.io/v1 (errors)
  patch       merge and JSON patches (errors)
  protobuf    request bodies: protobuf (what kubectl's typed commands send) or JSON (errors)
  table       Table output: printer columns, Service columns, ages
  resources   served resource types: built-ins and CRDs, CRD loading
  store       objects, the global resourceVersion, watch history, the state journal
  rbac        ServiceAccount tokens and the RBAC authorizer (errors)
  api         the verbs, discovery and OpenAPI (errors, schema, cel, apply, selectors, patch)
  handler     HTTP: routing, watches, fault injection (errors, selectors, protobuf, table, rbac)
"""
