/// The OpenAPI 3.1 description of the `/v1` API, served at `/v1/openapi.json` without a token.
/// The tests validate it with an outside validator and fuzz the server from it.
enum OpenAPIDocument {
    /// The document.
    static let json = #"""
{
  "openapi": "3.1.0",
  "info": {
    "title": "Almanac API",
    "version": "1.0.0",
    "description": "A tenant's datasets, forecasts and events. Every request but this document's needs `Authorization: Bearer <token>`; reads need a read or admin token, changes an admin token, events a publish or admin token. Errors are RFC 9457 problem documents. Each tenant has a request rate; past it the answer is 429 with Retry-After. The web console at /console calls this same API with a session cookie (from POST /console/session) and its X-Almanac-CSRF header instead of a bearer token."
  },
  "servers": [{"url": "/"}],
  "security": [{"bearer": []}],
  "paths": {
    "/v1/openapi.json": {
      "get": {
        "operationId": "getOpenAPI",
        "summary": "This document.",
        "security": [],
        "responses": {
          "200": {"description": "The OpenAPI document.", "content": {"application/json": {"schema": {"type": "object"}}}}
        }
      }
    },
    "/v1/events": {
      "post": {
        "operationId": "publishEvents",
        "summary": "Publish CloudEvents (structured, batch, or binary mode with ce-* headers).",
        "requestBody": {
          "required": true,
          "content": {
            "application/cloudevents+json": {"schema": {"$ref": "#/components/schemas/CloudEvent"}},
            "application/cloudevents-batch+json": {"schema": {"type": "array", "maxItems": 1000, "items": {"$ref": "#/components/schemas/CloudEvent"}}}
          }
        },
        "responses": {
          "202": {"description": "On the bus and archived.", "content": {"application/json": {"schema": {
            "type": "object", "required": ["accepted"], "properties": {"accepted": {"type": "array", "items": {"type": "string"}}}}}}},
          "400": {"$ref": "#/components/responses/Problem"}, "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "413": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      }
    },
    "/v1/datasets": {
      "get": {
        "operationId": "listDatasets",
        "summary": "The tenant's datasets, by name, a page at a time.",
        "parameters": [{"$ref": "#/components/parameters/limit"}, {"$ref": "#/components/parameters/cursor"}],
        "responses": {
          "200": {"description": "A page of datasets.", "content": {"application/json": {"schema": {
            "type": "object", "required": ["items", "next_cursor"],
            "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Dataset"}},
                           "next_cursor": {"type": ["string", "null"]}}}}}},
          "400": {"$ref": "#/components/responses/Problem"}, "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      },
      "post": {
        "operationId": "createDataset",
        "summary": "Create a dataset (CreateDataset).",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DatasetRequest"}}}},
        "responses": {
          "201": {"description": "Created.", "headers": {"Location": {"schema": {"type": "string"}}},
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Dataset"}}}},
          "400": {"$ref": "#/components/responses/Problem"}, "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "409": {"$ref": "#/components/responses/Problem"}, "413": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      }
    },
    "/v1/datasets/{name}": {
      "get": {
        "operationId": "getDataset",
        "summary": "A dataset with its latest versions and imports (with their reports).",
        "parameters": [{"$ref": "#/components/parameters/name"}],
        "responses": {
          "200": {"description": "The dataset.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DatasetDetail"}}}},
          "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "404": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      },
      "delete": {
        "operationId": "deleteDataset",
        "summary": "Delete a dataset with its data, versions, imports, predictors, forecasts and accuracy history (exported files stay). Needs an admin token.",
        "parameters": [{"$ref": "#/components/parameters/name"}],
        "responses": {
          "204": {"description": "Deleted."},
          "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "404": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      }
    },
    "/v1/datasets/{name}/data": {
      "post": {
        "operationId": "uploadData",
        "summary": "Upload a data file (CreateDatasetImportJob): streamed into the same checked ingest as a dropped file. Needs a publish or admin token.",
        "parameters": [{"$ref": "#/components/parameters/name"}],
        "requestBody": {"required": true, "content": {
          "text/csv": {"schema": {"type": "string"}},
          "application/gzip": {"schema": {"type": "string", "format": "binary"}}}},
        "responses": {
          "202": {"description": "Written and announced; the import runs.", "headers": {"Location": {"schema": {"type": "string"}}},
                  "content": {"application/json": {"schema": {"type": "object", "required": ["import_id", "status"],
                    "properties": {"import_id": {"type": "string"}, "status": {"const": "pending"}, "bytes": {"type": "integer"}}}}}},
          "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "404": {"$ref": "#/components/responses/Problem"}, "413": {"$ref": "#/components/responses/Problem"}, "415": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      }
    },
    "/v1/datasets/{name}/imports/{id}": {
      "get": {
        "operationId": "getImport",
        "summary": "An import's state: pending, then accepted or rejected with its report (bad rows by line), or failed.",
        "parameters": [{"$ref": "#/components/parameters/name"},
                       {"name": "id", "in": "path", "required": true, "schema": {"type": "string", "minLength": 1, "maxLength": 200}}],
        "responses": {
          "200": {"description": "The import.", "content": {"application/json": {"schema": {
            "type": "object", "required": ["import_id", "dataset", "status"],
            "properties": {"import_id": {"type": "string"}, "dataset": {"type": "string"},
                           "status": {"type": "string", "enum": ["pending", "accepted", "rejected", "failed"]},
                           "report": {"type": "object"}, "version": {"type": ["integer", "null"]}, "error": {"type": "string"}}}}}},
          "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "404": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      }
    },
    "/v1/datasets/{name}/predictors": {
      "get": {
        "operationId": "listPredictors",
        "summary": "The dataset's predictors, newest first, with their backtest metrics and each item's chosen model.",
        "parameters": [{"$ref": "#/components/parameters/name"}, {"$ref": "#/components/parameters/limit"}],
        "responses": {
          "200": {"description": "The predictors.", "content": {"application/json": {"schema": {"type": "object", "required": ["items"],
            "properties": {"items": {"type": "array", "items": {"type": "object", "required": ["id", "kind", "dataset_version", "metrics", "items"],
              "properties": {"id": {"type": "string"}, "kind": {"type": "string"}, "dataset_version": {"type": "integer"}, "metrics": {"type": "object"},
                             "created_at": {"type": "string", "format": "date-time"},
                             "trigger_event": {"type": "string", "description": "The id of the event that started the training."},
                             "trigger_type": {"type": ["string", "null"], "description": "Its type: almanac.accuracy.breached for a retrain after a breach."},
                             "items": {"type": "array", "items": {"type": "object", "required": ["item_id", "model"],
                               "properties": {"item_id": {"type": "string"}, "model": {"type": "string"}, "combination": {"type": "string"},
                                              "members": {"type": "array", "items": {"type": "string"}}}}}}}}}}}}},
          "400": {"$ref": "#/components/responses/Problem"}, "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "404": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      }
    },
    "/v1/datasets/{name}/accuracy": {
      "get": {
        "operationId": "getAccuracy",
        "summary": "The monitor's scores of the dataset's live forecasts on later actuals, against the retrain bound; breaches marked.",
        "parameters": [{"$ref": "#/components/parameters/name"}],
        "responses": {
          "200": {"description": "The measurements, oldest first.", "content": {"application/json": {"schema": {"type": "object", "required": ["items"],
            "properties": {"items": {"type": "array", "items": {"type": "object", "required": ["forecast_id", "dataset_version", "points", "breached"],
              "properties": {"forecast_id": {"type": "string"}, "dataset_version": {"type": "integer"}, "points": {"type": "integer"},
                             "wape": {"type": ["number", "null"]}, "mase": {"type": ["number", "null"]}, "wql": {"type": ["number", "null"]},
                             "bound": {"type": ["number", "null"]}, "breached": {"type": "boolean"}, "created_at": {"type": "string", "format": "date-time"}}}}}}}}},
          "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "404": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      }
    },
    "/v1/datasets/{name}/items": {
      "get": {
        "operationId": "listItems",
        "summary": "The dataset's items by id, a page at a time: those of the live forecast, or of the data before there is one.",
        "parameters": [{"$ref": "#/components/parameters/name"}, {"$ref": "#/components/parameters/limit"}, {"$ref": "#/components/parameters/cursor"},
                       {"name": "search", "in": "query", "required": false, "description": "Keep the items whose id contains this (case-insensitive).",
                        "schema": {"type": "string", "maxLength": 200}}],
        "responses": {
          "200": {"description": "A page of items.", "content": {"application/json": {"schema": {"type": "object", "required": ["items", "next_cursor"],
            "properties": {"items": {"type": "array", "items": {"type": "object", "required": ["item_id"], "properties": {"item_id": {"type": "string"}}}},
                           "next_cursor": {"type": ["string", "null"]}}}}}},
          "400": {"$ref": "#/components/responses/Problem"}, "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "404": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      }
    },
    "/v1/datasets/{name}/history": {
      "get": {
        "operationId": "getHistory",
        "summary": "One item's observations in time order (the last `limit`).",
        "parameters": [{"$ref": "#/components/parameters/name"}, {"$ref": "#/components/parameters/item"},
                       {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 10000}}],
        "responses": {
          "200": {"description": "The item's history.", "content": {"application/json": {"schema": {"type": "object", "required": ["item_id", "points"],
            "properties": {"item_id": {"type": "string"}, "points": {"type": "array", "items": {"type": "object", "required": ["timestamp", "value"],
              "properties": {"timestamp": {"type": "string", "format": "date-time"}, "value": {"type": "number"}}}}}}}}},
          "400": {"$ref": "#/components/responses/Problem"}, "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "404": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      }
    },
    "/v1/datasets/{name}/backtests": {
      "get": {
        "operationId": "getBacktests",
        "summary": "One item's backtests: for each of the latest predictors, the model chosen for the item, its backtest metrics, and the held-out window's quantile forecasts beside the actuals.",
        "parameters": [{"$ref": "#/components/parameters/name"}, {"$ref": "#/components/parameters/item"},
                       {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 20}}],
        "responses": {
          "200": {"description": "The backtests, newest predictor first.", "content": {"application/json": {"schema": {"type": "object", "required": ["item_id", "items"],
            "properties": {"item_id": {"type": "string"}, "items": {"type": "array", "items": {"type": "object",
              "required": ["predictor_id", "kind", "dataset_version", "live", "model", "metrics", "window"],
              "properties": {"predictor_id": {"type": "string"}, "kind": {"type": "string"}, "dataset_version": {"type": "integer"},
                             "created_at": {"type": "string", "format": "date-time"}, "live": {"type": "boolean"},
                             "model": {"type": ["string", "null"]}, "metrics": {"type": ["object", "null"]},
                             "window": {"oneOf": [{"type": "null"}, {"type": "object", "required": ["timestamps", "actual", "levels", "quantiles"],
                               "properties": {"timestamps": {"type": "array", "items": {"type": "string", "format": "date-time"}},
                                              "actual": {"type": "array", "items": {"type": "number"}},
                                              "levels": {"type": "array", "items": {"type": "number"}},
                                              "quantiles": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}}}]}}}}}}}}},
          "400": {"$ref": "#/components/responses/Problem"}, "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "404": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      }
    },
    "/v1/arrivals": {
      "get": {
        "operationId": "listArrivals",
        "summary": "The tenant's data arrivals, newest first, each with the chain of events it caused (from the archive's causation ids) and their webhook deliveries.",
        "parameters": [{"$ref": "#/components/parameters/limit"}, {"$ref": "#/components/parameters/cursor"}],
        "responses": {
          "200": {"description": "A page of arrivals.", "content": {"application/json": {"schema": {"type": "object", "required": ["items", "next_cursor"],
            "properties": {"next_cursor": {"type": ["string", "null"]}, "items": {"type": "array", "items": {"type": "object", "required": ["event_id", "archived_at", "steps"],
              "properties": {"event_id": {"type": "string"}, "archived_at": {"type": "string", "format": "date-time"},
                             "steps": {"type": "array", "items": {"type": "object", "required": ["event_id", "type", "archived_at", "after_ms"],
                               "properties": {"event_id": {"type": "string"}, "type": {"type": "string"}, "subject": {"type": ["string", "null"]},
                                              "archived_at": {"type": "string", "format": "date-time"}, "after_ms": {"type": "number"},
                                              "deliveries": {"type": "array", "items": {"type": "object"}}}}}}}}}}}}},
          "400": {"$ref": "#/components/responses/Problem"}, "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      }
    },
    "/v1/functions": {
      "get": {
        "operationId": "listFunctions",
        "summary": "The installation's functions: instances, lag, GPU need and queue, crash-looping state, and the tenant's own recent failures.",
        "responses": {
          "200": {"description": "The functions.", "content": {"application/json": {"schema": {"type": "object", "required": ["items", "checked_at"],
            "properties": {"checked_at": {"type": "string", "format": "date-time"}, "items": {"type": "array", "items": {"type": "object",
              "required": ["name", "concurrency", "gpu", "instances", "lag", "crash_looping", "recent_failures"],
              "properties": {"name": {"type": "string"}, "concurrency": {"type": "integer"}, "gpu": {"type": "string"}, "instances": {"type": "integer"},
                             "lag": {"type": ["integer", "null"]}, "crash_looping": {"type": "boolean"}, "consecutive_crashes": {"type": "integer"},
                             "last_exit": {"type": ["string", "null"]}, "held_until": {"type": ["string", "null"]}, "gpu_waiting_since": {"type": ["string", "null"]},
                             "recent_failures": {"type": "array", "items": {"type": "object"}}}}}}}}}},
          "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      }
    },
    "/v1/deadletters": {
      "get": {
        "operationId": "listDeadLetters",
        "summary": "The tenant's dead letters, newest first (open ones unless status says otherwise).",
        "parameters": [{"name": "status", "in": "query", "required": false, "schema": {"type": "string", "enum": ["open", "redriven", "discarded", "all"]}},
                       {"$ref": "#/components/parameters/limit"}, {"$ref": "#/components/parameters/cursor"}],
        "responses": {
          "200": {"description": "A page of dead letters.", "content": {"application/json": {"schema": {"type": "object", "required": ["items", "next_cursor"],
            "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/DeadLetter"}}, "next_cursor": {"type": ["string", "null"]}}}}}},
          "400": {"$ref": "#/components/responses/Problem"}, "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      }
    },
    "/v1/deadletters/{id}": {
      "get": {
        "operationId": "getDeadLetter",
        "summary": "One dead letter with its error and the original record.",
        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "maxLength": 20}}],
        "responses": {
          "200": {"description": "The dead letter.", "content": {"application/json": {"schema": {"allOf": [{"$ref": "#/components/schemas/DeadLetter"},
            {"type": "object", "properties": {"record": {"type": "string"}, "record_encoding": {"type": "string", "enum": ["utf-8", "base64"]}}}]}}}},
          "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "404": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      }
    },
    "/v1/deadletters/{id}/redrive": {
      "post": {
        "operationId": "redriveDeadLetter",
        "summary": "Send an open dead letter back where it failed.",
        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "maxLength": 20}}],
        "responses": {
          "202": {"description": "Sent again.", "content": {"application/json": {"schema": {"type": "object", "required": ["id", "status"],
            "properties": {"id": {"type": "integer"}, "status": {"const": "redriven"}, "topic": {"type": ["string", "null"]}}}}}},
          "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "404": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      }
    },
    "/v1/webhooks": {
      "get": {
        "operationId": "listWebhooks",
        "summary": "The tenant's webhook endpoints (never their secrets).",
        "responses": {
          "200": {"description": "The endpoints.", "content": {"application/json": {"schema": {"type": "object", "required": ["items"],
            "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Webhook"}}}}}}},
          "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      },
      "post": {
        "operationId": "createWebhook",
        "summary": "Add an endpoint; the answer holds its signing secret, shown once.",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {
          "type": "object", "required": ["url", "events"], "additionalProperties": false,
          "properties": {"url": {"type": "string", "maxLength": 2048}, "events": {"type": "array", "minItems": 1, "maxItems": 50, "items": {"type": "string"}},
                         "allow_private": {"type": "boolean"}}}}}},
        "responses": {
          "201": {"description": "Added.", "headers": {"Location": {"schema": {"type": "string"}}},
                  "content": {"application/json": {"schema": {"allOf": [{"$ref": "#/components/schemas/Webhook"},
                    {"type": "object", "required": ["secret"], "properties": {"secret": {"type": "string"}}}]}}}},
          "400": {"$ref": "#/components/responses/Problem"}, "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "413": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      }
    },
    "/v1/webhooks/{id}": {
      "delete": {
        "operationId": "deleteWebhook",
        "summary": "Delete an endpoint: it receives nothing more; its deliveries stay listed.",
        "parameters": [{"$ref": "#/components/parameters/endpoint"}],
        "responses": {
          "204": {"description": "Deleted."},
          "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "404": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      }
    },
    "/v1/webhooks/{id}/rotate-secret": {
      "post": {
        "operationId": "rotateWebhookSecret",
        "summary": "A new secret; the old one signs too (a second v1 signature) until the overlap ends (default one day, at most seven).",
        "parameters": [{"$ref": "#/components/parameters/endpoint"}],
        "requestBody": {"required": false, "content": {"application/json": {"schema": {
          "type": "object", "additionalProperties": false, "properties": {"overlap_seconds": {"type": "number", "minimum": 0, "maximum": 604800}}}}}},
        "responses": {
          "200": {"description": "The new secret, shown once.", "content": {"application/json": {"schema": {
            "type": "object", "required": ["id", "secret", "overlap_seconds"],
            "properties": {"id": {"type": "string"}, "secret": {"type": "string"}, "overlap_seconds": {"type": "number"}}}}}},
          "400": {"$ref": "#/components/responses/Problem"}, "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "404": {"$ref": "#/components/responses/Problem"}, "413": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      }
    },
    "/v1/webhooks/{id}/deliveries": {
      "get": {
        "operationId": "listDeliveries",
        "summary": "The endpoint's deliveries, newest first, with their state and attempts.",
        "parameters": [{"$ref": "#/components/parameters/endpoint"}, {"$ref": "#/components/parameters/limit"}, {"$ref": "#/components/parameters/cursor"}],
        "responses": {
          "200": {"description": "A page of deliveries.", "content": {"application/json": {"schema": {
            "type": "object", "required": ["items", "next_cursor"],
            "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Delivery"}}, "next_cursor": {"type": ["string", "null"]}}}}}},
          "400": {"$ref": "#/components/responses/Problem"}, "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "404": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      }
    },
    "/v1/deliveries/{id}/redeliver": {
      "post": {
        "operationId": "redeliver",
        "summary": "Send a delivery again, with the same webhook-id and body.",
        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "maxLength": 20}}],
        "responses": {
          "202": {"description": "Queued.", "content": {"application/json": {"schema": {"type": "object", "required": ["delivery_id", "state"],
            "properties": {"delivery_id": {"type": "integer"}, "state": {"const": "pending"}}}}}},
          "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "404": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      }
    },
    "/v1/datasets/{name}/forecast": {
      "get": {
        "operationId": "queryForecast",
        "summary": "The live forecast (or a given one) of one item or a page of items (QueryForecast), as JSON or CSV.",
        "parameters": [
          {"$ref": "#/components/parameters/name"},
          {"name": "item", "in": "query", "required": false, "schema": {"type": "string", "minLength": 1, "maxLength": 2048}},
          {"name": "forecast_id", "in": "query", "required": false, "schema": {"type": "string", "minLength": 1, "maxLength": 200}},
          {"$ref": "#/components/parameters/limit"},
          {"$ref": "#/components/parameters/cursor"}
        ],
        "responses": {
          "200": {
            "description": "The forecast's points per item; as CSV (`item_id,date,p10,…`) when Accept asks for text/csv, with the forecast id and the next cursor in headers.",
            "headers": {"Almanac-Forecast-Id": {"schema": {"type": "string"}}, "Almanac-Next-Cursor": {"schema": {"type": "string"}}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Forecast"}}, "text/csv": {"schema": {"type": "string"}}}
          },
          "400": {"$ref": "#/components/responses/Problem"}, "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "404": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      }
    },
    "/v1/datasets/{name}/s3-sources": {
      "get": {
        "operationId": "listS3Sources",
        "summary": "The dataset's S3 source rules: which bucket and key prefix feed it, from which store, with which credentials (by name).",
        "parameters": [{"$ref": "#/components/parameters/name"}],
        "responses": {
          "200": {"description": "The rules.", "content": {"application/json": {"schema": {"type": "object", "required": ["items"],
            "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/S3Source"}}}}}}},
          "404": {"$ref": "#/components/responses/Problem"}, "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      },
      "post": {
        "operationId": "addS3Source",
        "summary": "Add a rule: new objects under the bucket and prefix become the dataset's data arrivals. Needs an admin token.",
        "parameters": [{"$ref": "#/components/parameters/name"}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {
          "type": "object", "required": ["bucket", "endpoint", "credentials"], "additionalProperties": false,
          "properties": {"bucket": {"type": "string", "minLength": 3, "maxLength": 63}, "prefix": {"type": "string", "maxLength": 1024},
                         "endpoint": {"type": "string", "maxLength": 2048}, "region": {"type": "string", "maxLength": 40},
                         "path_style": {"type": "boolean"}, "credentials": {"type": "string", "maxLength": 100}}}}}},
        "responses": {
          "201": {"description": "Added.", "headers": {"Location": {"schema": {"type": "string"}}},
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/S3Source"}}}},
          "400": {"$ref": "#/components/responses/Problem"}, "404": {"$ref": "#/components/responses/Problem"}, "409": {"$ref": "#/components/responses/Problem"}, "413": {"$ref": "#/components/responses/Problem"}, "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      }
    },
    "/v1/s3-sources/{id}": {
      "delete": {
        "operationId": "deleteS3Source",
        "summary": "Remove a rule. Needs an admin token.",
        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "maxLength": 200}}],
        "responses": {"204": {"description": "Removed."}, "404": {"$ref": "#/components/responses/Problem"}, "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}}
      }
    },
    "/v1/s3/notifications": {
      "post": {
        "operationId": "postS3Notification",
        "summary": "A store's bucket notification (S3 event notification Records, or EventBridge's Object Created): one data arrival per new object a rule of the token's tenant covers; a notification delivered twice is one import. Needs a publish or admin token.",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": {
          "202": {"description": "The arrivals published and archived, and the objects no rule covers.", "content": {"application/json": {"schema": {
            "type": "object", "required": ["accepted", "ignored"],
            "properties": {"accepted": {"type": "array", "items": {"type": "object", "required": ["id", "dataset", "url"],
                             "properties": {"id": {"type": "string"}, "dataset": {"type": "string"}, "url": {"type": "string"}}}},
                           "ignored": {"type": "array", "items": {"type": "object", "required": ["object", "reason"],
                             "properties": {"object": {"type": "string"}, "reason": {"type": "string"}}}}}}}}},
          "400": {"$ref": "#/components/responses/Problem"}, "413": {"$ref": "#/components/responses/Problem"}, "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}
        }
      }
    }
  },
  "components": {
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "A tenant token (alm_…) from `almanac tenants create` or `almanac tokens create`."}},
    "parameters": {
      "name": {"name": "name", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$"}},
      "endpoint": {"name": "id", "in": "path", "required": true, "schema": {"type": "string", "maxLength": 200}},
      "limit": {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
      "item": {"name": "item", "in": "query", "required": true, "description": "The item's id.", "schema": {"type": "string", "minLength": 1, "maxLength": 2048}},
      "cursor": {"name": "cursor", "in": "query", "required": false, "description": "The next_cursor of the previous page.",
                 "schema": {"type": "string", "minLength": 1, "maxLength": 4096}}
    },
    "responses": {
      "Problem": {"description": "An RFC 9457 problem document.", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    },
    "schemas": {
      "S3Source": {
        "type": "object", "required": ["id", "dataset", "bucket", "prefix", "endpoint", "region", "path_style", "credentials"],
        "properties": {"id": {"type": "string"}, "dataset": {"type": "string"}, "bucket": {"type": "string"}, "prefix": {"type": "string"},
                       "endpoint": {"type": "string"}, "region": {"type": "string"}, "path_style": {"type": "boolean"},
                       "credentials": {"type": "string", "description": "The name of the tenant's secret; never the key itself."}}
      },
      "Problem": {
        "type": "object", "required": ["type", "title", "status", "detail"],
        "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"},
                       "error": {"type": "string"}, "code": {"type": "string"}, "attribute": {"type": "string"}, "event_index": {"type": "integer"}}
      },
      "CloudEvent": {
        "type": "object", "required": ["specversion", "id", "source", "type"],
        "properties": {"specversion": {"const": "1.0"}, "id": {"type": "string", "minLength": 1}, "source": {"type": "string", "minLength": 1},
                       "type": {"type": "string", "minLength": 1}, "subject": {"type": "string"}, "time": {"type": "string", "format": "date-time"},
                       "datacontenttype": {"type": "string"}, "data": {}}
      },
      "DatasetRequest": {
        "type": "object", "required": ["name", "horizon"], "additionalProperties": false,
        "properties": {
          "name": {"type": "string", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$"},
          "horizon": {"type": "integer", "minimum": 1, "maximum": 10000},
          "frequency": {"type": ["string", "null"], "enum": ["hourly", "daily", "weekly", "monthly", "quarterly", "yearly", null]},
          "quantiles": {"type": "array", "minItems": 1, "maxItems": 99, "uniqueItems": true, "items": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}},
          "models": {"type": "string", "enum": ["statistical", "deep", "champion"]},
          "retrain_wape": {"type": ["number", "null"], "minimum": 0, "maximum": 1000},
          "retrain_factor": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000},
          "max_error_rate": {"type": "number", "minimum": 0, "maximum": 1},
          "max_file_bytes": {"type": "integer", "minimum": 1},
          "max_line_bytes": {"type": "integer", "minimum": 64, "maximum": 1073741824}
        }
      },
      "Dataset": {
        "type": "object", "required": ["name", "horizon", "quantiles", "models", "latest_version", "live_forecast_id"],
        "properties": {
          "name": {"type": "string"}, "horizon": {"type": "integer"}, "frequency": {"type": ["string", "null"]},
          "quantiles": {"type": "array", "items": {"type": "number"}}, "models": {"type": "string"},
          "retrain_wape": {"type": ["number", "null"]}, "retrain_factor": {"type": "number"}, "max_error_rate": {"type": "number"},
          "max_file_bytes": {"type": "integer"}, "max_line_bytes": {"type": "integer"},
          "latest_version": {"type": ["integer", "null"]}, "live_forecast_id": {"type": ["string", "null"]}
        }
      },
      "DatasetDetail": {
        "allOf": [{"$ref": "#/components/schemas/Dataset"}, {
          "type": "object", "required": ["versions", "imports"],
          "properties": {
            "versions": {"type": "array", "items": {"type": "object", "required": ["version", "import_id", "rows_read", "rows_rejected", "items"],
              "properties": {"version": {"type": "integer"}, "import_id": {"type": "string"}, "source": {"type": "string"},
                             "rows_read": {"type": "integer"}, "rows_rejected": {"type": "integer"}, "rows_changed": {"type": "integer"},
                             "items": {"type": "integer"}, "created_at": {"type": "string", "format": "date-time"}}}},
            "imports": {"type": "array", "items": {"type": "object", "required": ["import_id", "accepted", "report"],
              "properties": {"import_id": {"type": "string"}, "source": {"type": "string"}, "accepted": {"type": "boolean"},
                             "report": {"type": "object"}, "created_at": {"type": "string", "format": "date-time"}}}}
          }
        }]
      },
      "DeadLetter": {
        "type": "object", "required": ["id", "stage", "event_id", "error_code", "error", "attempts", "status"],
        "properties": {"id": {"type": "integer"}, "stage": {"type": "string"}, "event_id": {"type": "string"}, "event_type": {"type": ["string", "null"]},
                       "error_code": {"type": "string"}, "error": {"type": "string"}, "attempts": {"type": "integer"},
                       "status": {"type": "string", "enum": ["open", "redriven", "discarded"]}, "created_at": {"type": "string", "format": "date-time"}}
      },
      "Webhook": {
        "type": "object", "required": ["id", "url", "events", "allow_private"],
        "properties": {"id": {"type": "string"}, "url": {"type": "string"}, "events": {"type": "array", "items": {"type": "string"}},
                       "allow_private": {"type": "boolean"}, "disabled": {"type": ["string", "null"]}, "created_at": {"type": "string", "format": "date-time"}}
      },
      "Delivery": {
        "type": "object", "required": ["id", "event_id", "event_type", "webhook_id", "state", "attempts"],
        "properties": {"id": {"type": "integer"}, "event_id": {"type": "string"}, "event_type": {"type": "string"}, "webhook_id": {"type": "string"},
                       "state": {"type": "string", "enum": ["pending", "delivered", "failed"]}, "attempts": {"type": "integer"},
                       "last_status": {"type": ["integer", "null"]}, "last_error": {"type": ["string", "null"]},
                       "created_at": {"type": "string", "format": "date-time"}, "delivered_at": {"type": ["string", "null"], "format": "date-time"}}
      },
      "Forecast": {
        "type": "object", "required": ["dataset", "forecast_id", "quantiles", "items", "next_cursor"],
        "properties": {
          "dataset": {"type": "string"}, "forecast_id": {"type": "string"}, "quantiles": {"type": "array", "items": {"type": "number"}},
          "items": {"type": "array", "items": {"type": "object", "required": ["item_id", "points"],
            "properties": {"item_id": {"type": "string"}, "points": {"type": "array", "items": {
              "type": "object", "required": ["timestamp", "mean"],
              "properties": {"timestamp": {"type": "string", "format": "date-time"}, "mean": {"type": "number"}},
              "additionalProperties": {"type": "number"}}}}}},
          "next_cursor": {"type": ["string", "null"]}
        }
      }
    }
  }
}
"""#
}
