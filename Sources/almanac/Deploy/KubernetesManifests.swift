import AlmanacCore
import Foundation

/// Kubernetes and KEDA objects for an installation, rendered from the function manifests and
/// the settings: the setup Job (migrations and topics), the router and the ingress as
/// Deployments (probes, resources, PodDisruptionBudgets, the ingress behind a Service), each
/// function as a Deployment scaled from zero by a KEDA ScaledObject on its input topic's lag,
/// and each GPU function as a KEDA ScaledJob on GPU nodes. Secrets are referenced by name
/// and key only; no value is ever written.
struct KubernetesManifests {
    let settings: DeploySettings
    let functions: [FunctionManifest]

    /// Where the image keeps things (see infra/Containerfile).
    static let appRoot = "/app"
    static let labelName = "app.kubernetes.io/name"
    static let labelComponent = "app.kubernetes.io/component"

    /// The files to write, each with its objects in the order they apply.
    func files() -> [(name: String, objects: [JSONValue])] {
        var out: [(String, [JSONValue])] = [
            ("00-namespace.yaml", [namespace()]),
            ("01-setup-job.yaml", [setupJob()]),
            ("02-kafka-trigger-auth.yaml", [triggerAuthentication()]),
            ("10-router.yaml", [deployment(component: "router", replicas: settings.routerReplicas,
                                           container: control(["serve", "--parts", "router", "--http-host", "0.0.0.0", "--http-port", "\(settings.ingressPort)",
                                                               "--functions", "\(Self.appRoot)/functions"], extraEnv: [("ALMANAC_ROUTER_GROUP", "1")])),
                                podDisruptionBudget("router")]),
            ("11-ingress.yaml", [deployment(component: "ingress", replicas: settings.ingressReplicas,
                                            container: control(["serve", "--parts", "ingress", "--http-host", "0.0.0.0", "--http-port", "\(settings.ingressPort)",
                                                                "--functions", "\(Self.appRoot)/functions", "--drop", "/data/drop", "--export", "/data/export"],
                                                               extraEnv: [])),
                                 podDisruptionBudget("ingress"), service()]),
        ]
        for f in functions.sorted(by: { $0.name < $1.name }) {
            if runsAsJob(f) {
                out.append(("20-fn-\(f.name).yaml", [scaledJob(f)]))
            } else {
                out.append(("20-fn-\(f.name).yaml", [functionDeployment(f), scaledObject(f)]))
            }
        }
        return out
    }

    /// Whether a function runs as jobs on GPU nodes: `gpu: required`, and `preferred` where the settings say so.
    func runsAsJob(_ f: FunctionManifest) -> Bool {
        f.gpu == .required || (f.gpu == .preferred && settings.gpuPreferred == "job")
    }

    // MARK: objects

    func metadata(_ name: String, component: String) -> JSONValue {
        ["name": .string(name), "namespace": .string(settings.namespace),
         "labels": [Self.labelName: "almanac", Self.labelComponent: .string(component)]]
    }

    func namespace() -> JSONValue {
        ["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(settings.namespace)]]
    }

    /// Migrations and topics, before the rest: a Job here, and the same command as every pod's
    /// init container (migrations hold a lock; existing topics are left alone), so nothing runs
    /// on an old schema whatever order the objects are applied in.
    func setupJob() -> JSONValue {
        ["apiVersion": "batch/v1", "kind": "Job", "metadata": metadata("almanac-setup", component: "setup"),
         "spec": ["backoffLimit": 10, "ttlSecondsAfterFinished": 86400,
                  "template": ["metadata": ["labels": [Self.labelName: "almanac", Self.labelComponent: "setup"]],
                               "spec": podSpec(containers: [setupContainer(name: "setup")], restart: "OnFailure")]]]
    }

    func setupContainer(name: String) -> JSONValue {
        container(name: name, command: ["\(Self.appRoot)/bin/almanac", "setup", "--functions", "\(Self.appRoot)/functions",
                                        "--partitions", "\(settings.partitions)", "--replication-factor", "\(settings.replicationFactor)"],
                  env: [], small: true)
    }

    /// KEDA's credentials for the Kafka scaler, from the Kafka secret's keys.
    func triggerAuthentication() -> JSONValue {
        var refs: [JSONValue] = []
        if settings.kafkaSecurityProtocol.hasPrefix("SASL") {
            for (parameter, key) in [("sasl", "sasl"), ("username", "username"), ("password", "password")] {
                refs.append(["parameter": .string(parameter), "name": .string(settings.kafkaSecret), "key": .string(key)])
            }
        }
        if settings.kafkaSecurityProtocol.hasSuffix("SSL") {
            refs.append(["parameter": "tls", "name": .string(settings.kafkaSecret), "key": "tls"])
            refs.append(["parameter": "ca", "name": .string(settings.kafkaSecret), "key": "ca.crt"])
        }
        return ["apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication", "metadata": metadata("almanac-kafka", component: "keda"),
                "spec": ["secretTargetRef": .array(refs)]]
    }

    func deployment(component: String, replicas: Int, container: JSONValue) -> JSONValue {
        let labels: JSONValue = [Self.labelName: "almanac", Self.labelComponent: .string(component)]
        return ["apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata("almanac-\(component)", component: component),
                "spec": ["replicas": .number(Double(replicas)), "selector": ["matchLabels": labels],
                         "strategy": ["type": "RollingUpdate", "rollingUpdate": ["maxUnavailable": 0, "maxSurge": 1]],
                         "template": ["metadata": ["labels": labels],
                                      "spec": podSpec(containers: [container], initContainers: [setupContainer(name: "setup")], grace: 60)]]]
    }

    /// A control-plane container (`almanac serve` with some parts), probed over HTTP.
    func control(_ arguments: [String], extraEnv: [(String, String)]) -> JSONValue {
        var c = container(name: "almanac", command: ["\(Self.appRoot)/bin/almanac"] + arguments, env: extraEnv, small: false).objectValue!
        c["ports"] = [["name": "http", "containerPort": .number(Double(settings.ingressPort))]]
        c["livenessProbe"] = ["httpGet": ["path": "/healthz", "port": "http"], "periodSeconds": 10, "failureThreshold": 3]
        c["readinessProbe"] = ["httpGet": ["path": "/readyz", "port": "http"], "periodSeconds": 5, "failureThreshold": 2]
        c["startupProbe"] = ["httpGet": ["path": "/healthz", "port": "http"], "periodSeconds": 2, "failureThreshold": 60]
        return .object(c)
    }

    func podDisruptionBudget(_ component: String) -> JSONValue {
        ["apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": metadata("almanac-\(component)", component: component),
         "spec": ["minAvailable": 1, "selector": ["matchLabels": [Self.labelName: "almanac", Self.labelComponent: .string(component)]]]]
    }

    func service() -> JSONValue {
        ["apiVersion": "v1", "kind": "Service", "metadata": metadata("almanac-ingress", component: "ingress"),
         "spec": ["selector": [Self.labelName: "almanac", Self.labelComponent: "ingress"],
                  "ports": [["name": "http", "port": 80, "targetPort": "http"]]]]
    }

    /// A function's pods: its executable or command, its manifest, and no exit when idle
    /// (KEDA scales the Deployment to zero; a Job's pod still exits when the queue is empty).
    func functionContainer(_ f: FunctionManifest, idleExit: Bool) -> JSONValue {
        let folder = "\(Self.appRoot)/functions/\(f.name)"
        var command: [String]
        switch f.run {
        case .executable(let exe, let arguments): command = ["\(Self.appRoot)/bin/\(exe)"] + arguments
        case .command(let parts): command = parts
        }
        var env: [(String, String)] = [("ALMANAC_FUNCTION_MANIFEST", "\(folder)/function.yaml"), ("ALMANAC_DROP_DIR", "/data/drop"),
                                      ("ALMANAC_EXPORT_DIR", "/data/export")]
        if !idleExit { env.append(("ALMANAC_IDLE_TIMEOUT", "never")) }
        env += f.environment.sorted(by: { $0.key < $1.key }).map { ($0.key, $0.value) }
        var c = container(name: f.name, command: command, env: env, small: false).objectValue!
        c["workingDir"] = .string(folder)
        return .object(c)
    }

    func functionDeployment(_ f: FunctionManifest) -> JSONValue {
        let labels: JSONValue = [Self.labelName: "almanac", Self.labelComponent: .string("fn-\(f.name)")]
        return ["apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata("fn-\(f.name)", component: "fn-\(f.name)"),
                "spec": ["selector": ["matchLabels": labels],
                         "template": ["metadata": ["labels": labels],
                                      "spec": podSpec(containers: [functionContainer(f, idleExit: false)], initContainers: [setupContainer(name: "setup")],
                                                      grace: Int(f.timeout.rounded(.up)) + 30)]]]
    }

    func kafkaTrigger(_ f: FunctionManifest, lagThreshold: Int) -> JSONValue {
        var meta: [String: JSONValue] = [
            "bootstrapServers": .string(settings.kafkaBrokers), "consumerGroup": .string(f.consumerGroup), "topic": .string(f.inputTopic),
            "lagThreshold": .string("\(lagThreshold)"), "activationLagThreshold": "0", "offsetResetPolicy": "earliest",
            "allowIdleConsumers": "false", "scaleToZeroOnInvalidOffset": "false", "excludePersistentLag": "false",
        ]
        if settings.kafkaSecurityProtocol.hasPrefix("SASL") { meta["sasl"] = .string(Self.kedaSASL(settings.kafkaSASLMechanism ?? "PLAIN")) }
        if settings.kafkaSecurityProtocol.hasSuffix("SSL") { meta["tls"] = "enable" }
        return ["type": "kafka", "metadata": .object(meta), "authenticationRef": ["name": "almanac-kafka"]]
    }

    /// KEDA's name for a SASL mechanism.
    static func kedaSASL(_ mechanism: String) -> String {
        ["PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"][mechanism] ?? "plaintext"
    }

    /// From zero to the manifest's concurrency on the input topic's lag; back to zero after
    /// the manifest's idle timeout without lag.
    func scaledObject(_ f: FunctionManifest) -> JSONValue {
        ["apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": metadata("fn-\(f.name)", component: "fn-\(f.name)"),
         "spec": ["scaleTargetRef": ["name": .string("fn-\(f.name)")], "minReplicaCount": 0,
                  "maxReplicaCount": .number(Double(f.concurrency)), "pollingInterval": 5,
                  "cooldownPeriod": .number(Double(max(30, Int(f.idleTimeout.rounded(.up))))),
                  "triggers": [kafkaTrigger(f, lagThreshold: settings.lagThreshold)]]]
    }

    /// One Job per waiting event (lag threshold 1), at most the manifest's concurrency at once,
    /// and never more than the events while pods are Pending (the `accurate` strategy counts
    /// pending jobs); each pod asks for a GPU on GPU nodes and exits when the queue is empty.
    func scaledJob(_ f: FunctionManifest) -> JSONValue {
        var c = functionContainer(f, idleExit: true).objectValue!
        var resources = c["resources"]?.objectValue ?? [:]
        var limits = resources["limits"]?.objectValue ?? [:]
        limits["nvidia.com/gpu"] = 1
        resources["limits"] = .object(limits)
        c["resources"] = .object(resources)
        var pod = podSpec(containers: [.object(c)], initContainers: [setupContainer(name: "setup")], restart: "Never",
                          grace: Int(f.timeout.rounded(.up)) + 30).objectValue!
        pod["nodeSelector"] = .object(settings.gpuNodeSelector.mapValues(JSONValue.string))
        pod["tolerations"] = .array(settings.gpuTolerations)
        let attempts = Double(max(1, f.retries.maxAttempts))
        return ["apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob", "metadata": metadata("fn-\(f.name)", component: "fn-\(f.name)"),
                "spec": ["jobTargetRef": ["parallelism": 1, "completions": 1, "backoffLimit": 2,
                                          "activeDeadlineSeconds": .number((f.timeout * attempts + 600).rounded(.up)),
                                          "template": ["metadata": ["labels": [Self.labelName: "almanac", Self.labelComponent: .string("fn-\(f.name)")]],
                                                       "spec": .object(pod)]],
                         "pollingInterval": 10, "maxReplicaCount": .number(Double(f.concurrency)),
                         "successfulJobsHistoryLimit": 5, "failedJobsHistoryLimit": 5,
                         "scalingStrategy": ["strategy": "accurate", "pendingPodConditions": ["Ready", "PodScheduled"]],
                         "triggers": [kafkaTrigger(f, lagThreshold: 1)]]]
    }

    // MARK: pieces

    func podSpec(containers: [JSONValue], initContainers: [JSONValue] = [], restart: String = "Always", grace: Int = 60) -> JSONValue {
        var spec: [String: JSONValue] = [
            "containers": .array(containers), "restartPolicy": .string(restart), "terminationGracePeriodSeconds": .number(Double(grace)),
            "securityContext": ["runAsNonRoot": true, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001],
        ]
        if !initContainers.isEmpty { spec["initContainers"] = .array(initContainers) }
        var volumes: [JSONValue] = [["name": "data", "emptyDir": [:]]]
        if let claim = settings.dataVolumeClaim { volumes = [["name": "data", "persistentVolumeClaim": ["claimName": .string(claim)]]] }
        if settings.kafkaSecurityProtocol.hasSuffix("SSL") {
            volumes.append(["name": "kafka-ca", "secret": ["secretName": .string(settings.kafkaSecret), "items": [["key": "ca.crt", "path": "ca.crt"]]]])
        }
        spec["volumes"] = .array(volumes)
        return .object(spec)
    }

    /// A container with the installation's environment: Postgres and Kafka credentials from
    /// their secrets (by reference), the rest as plain values.
    func container(name: String, command: [String], env extra: [(String, String)], small: Bool) -> JSONValue {
        var env: [JSONValue] = [
            ["name": "DATABASE_URL", "valueFrom": ["secretKeyRef": ["name": .string(settings.postgresSecret), "key": "url"]]],
            ["name": "KAFKA_BROKERS", "value": .string(settings.kafkaBrokers)],
            ["name": "KAFKA_SECURITY_PROTOCOL", "value": .string(settings.kafkaSecurityProtocol)],
            ["name": "ALMANAC_KAFKA_REPLICATION", "value": .string("\(settings.replicationFactor)")],
        ]
        if settings.kafkaSecurityProtocol.hasPrefix("SASL") {
            env.append(["name": "KAFKA_SASL_MECHANISM", "value": .string(settings.kafkaSASLMechanism ?? "PLAIN")])
            for (variable, key) in [("KAFKA_SASL_USERNAME", "username"), ("KAFKA_SASL_PASSWORD", "password")] {
                env.append(["name": .string(variable), "valueFrom": ["secretKeyRef": ["name": .string(settings.kafkaSecret), "key": .string(key)]]])
            }
        }
        var mounts: [JSONValue] = [["name": "data", "mountPath": "/data"]]
        if settings.kafkaSecurityProtocol.hasSuffix("SSL") {
            env.append(["name": "KAFKA_SSL_CA_LOCATION", "value": "/etc/almanac/kafka/ca.crt"])
            mounts.append(["name": "kafka-ca", "mountPath": "/etc/almanac/kafka", "readOnly": true])
        }
        env += extra.map { ["name": .string($0.0), "value": .string($0.1)] }
        return [
            "name": .string(name), "image": .string(settings.image), "imagePullPolicy": .string(settings.imagePullPolicy),
            "command": .array(command.map(JSONValue.string)), "env": .array(env), "volumeMounts": .array(mounts),
            "securityContext": ["allowPrivilegeEscalation": false, "readOnlyRootFilesystem": false, "capabilities": ["drop": ["ALL"]]],
            "resources": small
                ? ["requests": ["cpu": "50m", "memory": "64Mi"], "limits": ["memory": "256Mi"]]
                : ["requests": ["cpu": .string(settings.cpuRequest), "memory": .string(settings.memoryRequest)],
                   "limits": ["memory": .string(settings.memoryLimit)]],
        ]
    }
}

/// Writes JSON values as block YAML: mappings and sequences indented, every string
/// double-quoted with JSON's escapes (valid YAML, never mistaken for a number or a boolean),
/// keys in the order Kubernetes objects are read (apiVersion, kind, metadata, spec), then
/// alphabetically.
enum YAMLWriter {
    static let first = ["apiVersion", "kind", "metadata", "name", "namespace", "type", "spec"]

    static func document(_ value: JSONValue) -> String {
        var out = ""
        write(value, indent: 0, to: &out, inSequence: false)
        return out
    }

    static func key(_ k: String) -> String {
        k.range(of: "^[A-Za-z_][A-Za-z0-9_./-]*$", options: .regularExpression) != nil ? k : JSONValue.string(k).serialized()
    }

    static func scalar(_ v: JSONValue) -> String? {
        switch v {
        case .object(let o) where o.isEmpty: return "{}"
        case .array(let a) where a.isEmpty: return "[]"
        case .object, .array: return nil
        case .number(let n): return n == n.rounded() && abs(n) < 1e15 ? String(Int64(n)) : JSONValue.format(n)
        default: return v.serialized()
        }
    }

    static func sortedKeys(_ o: [String: JSONValue]) -> [String] {
        o.keys.sorted { a, b in
            let ia = first.firstIndex(of: a) ?? first.count, ib = first.firstIndex(of: b) ?? first.count
            return ia != ib ? ia < ib : a < b
        }
    }

    static func write(_ v: JSONValue, indent: Int, to out: inout String, inSequence: Bool) {
        let pad = String(repeating: " ", count: indent)
        switch v {
        case .object(let o) where !o.isEmpty:
            for (i, k) in sortedKeys(o).enumerated() {
                let prefix = inSequence && i == 0 ? "" : pad
                if let s = scalar(o[k]!) {
                    out += "\(prefix)\(key(k)): \(s)\n"
                } else {
                    out += "\(prefix)\(key(k)):\n"
                    write(o[k]!, indent: indent + 2, to: &out, inSequence: false)
                }
            }
        case .array(let a) where !a.isEmpty:
            for e in a {
                if let s = scalar(e) {
                    out += "\(pad)- \(s)\n"
                } else {
                    out += "\(pad)- "
                    write(e, indent: indent + 2, to: &out, inSequence: true)
                }
            }
        default:
            out += pad + (scalar(v) ?? "null") + "\n"
        }
    }
}
