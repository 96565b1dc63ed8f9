"""`almanac deploy kubernetes`: the manifests rendered for functions/ (and for a folder with a
GPU-only function) are checked offline — every Kubernetes object against the Kubernetes
schemas that kubernetes-validate ships (strict: no unknown field), every KEDA object against
the fields KEDA's documentation defines (ScaledObject, ScaledJob, TriggerAuthentication, the
kafka trigger), the job template of a ScaledJob as a Kubernetes JobSpec. No Kubernetes cluster
is started here (none can be, on this machine)."""
import os
import shutil
import subprocess
import tempfile
import unittest

import kubernetes_validate
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALMANAC = os.path.join(ROOT, ".build", "debug", "almanac")
KUBERNETES_VERSION = "1.33.0"

# The fields KEDA's documentation defines (keda.sh/docs/2.17: concepts/scaling-deployments,
# scaling-jobs, authentication; scalers/apache-kafka).
KEDA = {
    "ScaledObject": {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod", "idleReplicaCount",
                     "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers"},
    "ScaledJob": {"jobTargetRef", "pollingInterval", "successfulJobsHistoryLimit", "failedJobsHistoryLimit", "envSourceContainerName",
                  "minReplicaCount", "maxReplicaCount", "rolloutStrategy", "rollout", "scalingStrategy", "triggers"},
    "TriggerAuthentication": {"podIdentity", "secretTargetRef", "env", "hashiCorpVault", "azureKeyVault", "awsSecretManager",
                              "gcpSecretManager", "configMapTargetRef", "boundServiceAccountToken"},
}
SCALE_TARGET = {"name", "apiVersion", "kind", "envSourceContainerName"}
TRIGGER = {"type", "metadata", "name", "useCachedMetrics", "metricType", "authenticationRef"}
SCALING_STRATEGY = {"strategy", "customScalingQueueLengthDeduction", "customScalingRunningJobPercentage",
                    "pendingPodConditions", "multipleScalersCalculation"}
KAFKA_METADATA = {"bootstrapServers", "consumerGroup", "topic", "lagThreshold", "activationLagThreshold", "offsetResetPolicy",
                  "allowIdleConsumers", "scaleToZeroOnInvalidOffset", "excludePersistentLag", "version", "partitionLimitation",
                  "limitToPartitionsWithLag", "sasl", "tls", "unsafeSsl", "ensureEvenDistributionOfPartitions"}
KAFKA_AUTH_PARAMETERS = {"sasl", "username", "password", "tls", "ca", "cert", "key", "keyPassword", "oauthTokenEndpointUri", "scopes"}

SETTINGS = """
namespace: forecasting
image: registry.example.com/almanac:1.0.0
kafka:
  brokers: kafka-0.kafka:9093,kafka-1.kafka:9093,kafka-2.kafka:9093
  securityProtocol: SASL_SSL
  saslMechanism: SCRAM-SHA-512
  secret: almanac-kafka
  partitions: 12
  replicationFactor: 3
postgres: { secret: almanac-postgres }
data: { volumeClaim: almanac-data }
gpu:
  nodeSelector: { cloud.example.com/accelerator: h100 }
  tolerations: [{ key: nvidia.com/gpu, operator: Exists, effect: NoSchedule }]
"""

GPU_FUNCTION = """
name: train-gpu
run: { command: [python3, main.py] }
subscriptions:
  - type: [almanac.dataset.imported]
emits: [almanac.predictor.trained]
concurrency: 2
timeout: 1h
resources: { gpu: required }
"""

# What a person would put in the secrets: none of it may reach a rendered file.
SECRET_VALUES = ["s3cr3t-kafka-password", "postgres://almanac:pg-s3cr3t@db:5432/almanac", "BEGIN CERTIFICATE"]


def render(functions, settings_text, env=None):
    out = tempfile.mkdtemp(prefix="almanac-k8s-")
    settings = os.path.join(out, "settings.yaml")
    with open(settings, "w") as f:
        f.write(settings_text)
    target = os.path.join(out, "manifests")
    run = subprocess.run([ALMANAC, "deploy", "kubernetes", "--functions", functions, "--settings", settings, "--out", target],
                         cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, **(env or {})))
    if run.returncode != 0:
        raise AssertionError(f"deploy kubernetes failed: {run.stderr}")
    files = {}
    for name in sorted(os.listdir(target)):
        with open(os.path.join(target, name)) as f:
            files[name] = f.read()
    shutil.rmtree(out)
    return files


def objects(files):
    return [o for text in files.values() for o in yaml.safe_load_all(text) if o]


class RenderedManifestsTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(ALMANAC):
            raise AssertionError(f"{ALMANAC} is missing: run swift build first")
        # The secrets' values are in the environment of the command: it must not copy them.
        env = {"KAFKA_SASL_PASSWORD": SECRET_VALUES[0], "DATABASE_URL": SECRET_VALUES[1]}
        cls.files = render(os.path.join(ROOT, "functions"), SETTINGS, env)
        cls.objects = objects(cls.files)
        gpu_dir = tempfile.mkdtemp(prefix="almanac-fn-")
        os.makedirs(os.path.join(gpu_dir, "train-gpu"))
        with open(os.path.join(gpu_dir, "train-gpu", "function.yaml"), "w") as f:
            f.write(GPU_FUNCTION)
        cls.gpu_objects = objects(render(gpu_dir, SETTINGS))
        shutil.rmtree(gpu_dir)

    def named(self, kind, name, objs=None):
        found = [o for o in (objs or self.objects) if o["kind"] == kind and o["metadata"]["name"] == name]
        self.assertEqual(len(found), 1, f"{kind}/{name}")
        return found[0]

    def check_keda(self, o):
        spec = o["spec"]
        self.assertLessEqual(set(spec), KEDA[o["kind"]], f"{o['kind']} {o['metadata']['name']}: fields KEDA does not define")
        if o["kind"] == "TriggerAuthentication":
            for ref in spec["secretTargetRef"]:
                self.assertEqual(set(ref), {"parameter", "name", "key"})
                self.assertIn(ref["parameter"], KAFKA_AUTH_PARAMETERS)
            return
        for t in spec["triggers"]:
            self.assertLessEqual(set(t), TRIGGER)
            self.assertEqual(t["type"], "kafka")
            self.assertLessEqual(set(t["metadata"]), KAFKA_METADATA)
            self.assertTrue(all(isinstance(v, str) for v in t["metadata"].values()), "KEDA trigger metadata values are strings")
            self.assertEqual(t["metadata"]["consumerGroup"], t["metadata"]["topic"])
            self.assertIn(t["metadata"]["sasl"], {"plaintext", "scram_sha256", "scram_sha512"})
            self.assertEqual(t["authenticationRef"], {"name": "almanac-kafka"})
        if o["kind"] == "ScaledObject":
            self.assertLessEqual(set(spec["scaleTargetRef"]), SCALE_TARGET)
            self.named("Deployment", spec["scaleTargetRef"]["name"])
        else:
            self.assertLessEqual(set(spec["scalingStrategy"]), SCALING_STRATEGY)
            self.assertIn(spec["scalingStrategy"]["strategy"], {"default", "custom", "accurate", "eager"})
            # The job template is a Kubernetes JobSpec.
            job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "template"}, "spec": spec["jobTargetRef"]}
            kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)

    def test_every_object_is_valid(self):
        kinds = set()
        for o in self.objects + self.gpu_objects:
            kinds.add(o["kind"])
            if o["apiVersion"].startswith("keda.sh/"):
                self.check_keda(o)
            else:
                kubernetes_validate.validate(o, KUBERNETES_VERSION, strict=True)
        self.assertEqual(kinds, {"Namespace", "Job", "TriggerAuthentication", "Deployment", "PodDisruptionBudget", "Service",
                                 "ScaledObject", "ScaledJob"})

    def test_a_broken_object_is_caught(self):
        # The validation can fail: a Deployment with a misspelt field is refused.
        broken = dict(self.named("Deployment", "almanac-router"))
        broken["spec"] = dict(broken["spec"], replica=2)
        with self.assertRaises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)

    def test_functions_scale_from_zero_to_their_concurrency(self):
        notify = self.named("ScaledObject", "fn-notify")["spec"]
        self.assertEqual((notify["minReplicaCount"], notify["maxReplicaCount"]), (0, 4))  # notify's concurrency is 4
        self.assertEqual(self.named("ScaledObject", "fn-ingest")["spec"]["maxReplicaCount"], 1)
        trigger = notify["triggers"][0]["metadata"]
        self.assertEqual((trigger["topic"], trigger["consumerGroup"]), ("almanac.fn.notify", "almanac.fn.notify"))
        self.assertEqual(trigger["bootstrapServers"], "kafka-0.kafka:9093,kafka-1.kafka:9093,kafka-2.kafka:9093")
        pod = self.named("Deployment", "fn-notify")["spec"]["template"]["spec"]
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        self.assertEqual(env["ALMANAC_IDLE_TIMEOUT"]["value"], "never")
        self.assertEqual(env["ALMANAC_FUNCTION_MANIFEST"]["value"], "/app/functions/notify/function.yaml")
        self.assertEqual(pod["containers"][0]["command"], ["/app/bin/fn-notify"])
        self.assertEqual(pod["initContainers"][0]["command"][1], "setup")
        self.assertNotIn("replicas", self.named("Deployment", "fn-notify")["spec"])  # KEDA owns the count

    def test_gpu_functions_are_jobs_on_gpu_nodes(self):
        job = self.named("ScaledJob", "fn-train-gpu", self.gpu_objects)["spec"]
        pod = job["jobTargetRef"]["template"]["spec"]
        self.assertEqual(pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"], 1)
        self.assertEqual(pod["nodeSelector"], {"cloud.example.com/accelerator": "h100"})
        self.assertEqual(pod["tolerations"], [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
        self.assertEqual(pod["restartPolicy"], "Never")
        # One job per waiting event, at most the concurrency, pending jobs counted.
        self.assertEqual(job["triggers"][0]["metadata"]["lagThreshold"], "1")
        self.assertEqual(job["maxReplicaCount"], 2)
        self.assertEqual(job["scalingStrategy"]["strategy"], "accurate")
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        self.assertNotIn("ALMANAC_IDLE_TIMEOUT", env)  # a job's pod exits when the queue is empty
        self.assertEqual([o["kind"] for o in self.gpu_objects if o["metadata"]["name"] == "fn-train-gpu"], ["ScaledJob"])
        # With gpu.preferred unset (cpu), functions/'s train-deep (preferred) stays a Deployment.
        self.named("Deployment", "fn-train-deep")

    def test_the_control_plane_and_setup(self):
        router = self.named("Deployment", "almanac-router")
        c = router["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(c["readinessProbe"]["httpGet"]["path"], "/readyz")
        self.assertEqual(c["livenessProbe"]["httpGet"]["path"], "/healthz")
        self.assertIn("router", c["command"])
        self.assertIn({"name": "ALMANAC_ROUTER_GROUP", "value": "1"}, c["env"])
        self.named("PodDisruptionBudget", "almanac-router")
        self.named("PodDisruptionBudget", "almanac-ingress")
        self.assertEqual(self.named("Service", "almanac-ingress")["spec"]["selector"]["app.kubernetes.io/component"], "ingress")
        setup = self.named("Job", "almanac-setup")["spec"]["template"]["spec"]["containers"][0]["command"]
        self.assertEqual(setup[1:2] + setup[-4:], ["setup", "--partitions", "12", "--replication-factor", "3"])
        self.assertTrue(all(o["metadata"].get("namespace", "forecasting") == "forecasting" for o in self.objects))

    def test_secrets_are_referenced_never_written(self):
        text = "\n".join(self.files.values())
        for value in SECRET_VALUES:
            self.assertNotIn(value, text)
        for o in self.objects:
            self.assertNotEqual(o["kind"], "Secret")
        pods = [o["spec"]["template"]["spec"] for o in self.objects if o["kind"] in ("Deployment", "Job")]
        for pod in pods:
            for c in pod["containers"] + pod.get("initContainers", []):
                env = {e["name"]: e for e in c["env"]}
                for name in ("DATABASE_URL", "KAFKA_SASL_PASSWORD", "KAFKA_SASL_USERNAME"):
                    self.assertEqual(set(env[name]), {"name", "valueFrom"}, f"{name} must come from a secret")
            self.assertTrue(pod["securityContext"]["runAsNonRoot"])

    def test_bad_settings_say_what_is_wrong(self):
        cases = [("image: x\nkafka: {brokers: b:9092, securityProtocol: SASL_SSL}\n", "kafka.saslMechanism"),
                 ("kafka: {brokers: b:9092}\n", "image"),
                 ("image: x\nkafka: {brokers: b:9092, partitions: 0}\n", "kafka.partitions"),
                 ("image: x\nkafka: {brokers: b:9092}\nnamespace: Not_A_Label\n", "namespace"),
                 ("image: x\nkafka: {brokers: b:9092}\nreplicas: 3\n", "replicas")]
        for text, field in cases:
            with self.assertRaises(AssertionError) as refused:
                render(os.path.join(ROOT, "functions"), text)
            self.assertIn(field, str(refused.exception))


class CommittedExampleTests(unittest.TestCase):
    def test_the_example_under_infra_kubernetes_is_what_the_command_renders(self):
        with open(os.path.join(ROOT, "infra", "kubernetes", "settings.example.yaml")) as f:
            fresh = render(os.path.join(ROOT, "functions"), f.read())
        folder = os.path.join(ROOT, "infra", "kubernetes", "rendered")
        committed = {}
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name)) as f:
                committed[name] = f.read()
        self.assertEqual(committed, fresh, "re-render it: almanac deploy kubernetes --settings infra/kubernetes/settings.example.yaml "
                                           "--out infra/kubernetes/rendered")


if __name__ == "__main__":
    unittest.main()
