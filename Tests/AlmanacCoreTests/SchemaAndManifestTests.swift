import AlmanacCore
import Foundation
import Testing

@Suite struct JSONSchemaTests {
    let schema = try! JSONSchema(JSONValue(parsing: """
        {"type":"object","required":["dataset","url"],"additionalProperties":false,
         "properties":{"dataset":{"type":"string","pattern":"^[a-z0-9_-]+$","maxLength":64},
                       "url":{"type":"string","format":"uri"},
                       "rows":{"type":"integer","minimum":1},
                       "format":{"enum":["csv","csv.gz"]},
                       "tags":{"type":"array","items":{"type":"string"},"maxItems":2}}}
        """))

    @Test func acceptsValid() {
        #expect(schema.violations(of: ["dataset": "sales", "url": "file:///drop/sales.csv", "rows": 3, "format": "csv", "tags": ["a"]]).isEmpty)
    }

    @Test("reports each violation with its path", arguments: [
        (["url": "file:///x"] as JSONValue, "/", "missing required property 'dataset'"),
        (["dataset": "Sales!", "url": "file:///x"], "/dataset", "must match the pattern"),
        (["dataset": "s", "url": "not a uri"], "/url", "absolute URI"),
        (["dataset": "s", "url": "file:///x", "rows": 0], "/rows", "must be ≥ 1"),
        (["dataset": "s", "url": "file:///x", "rows": 1.5], "/rows", "must be integer"),
        (["dataset": "s", "url": "file:///x", "format": "xlsx"], "/format", "must be one of"),
        (["dataset": "s", "url": "file:///x", "extra": 1], "/extra", "not allowed"),
        (["dataset": "s", "url": "file:///x", "tags": ["a", 1]], "/tags/1", "must be string"),
        (["dataset": "s", "url": "file:///x", "tags": ["a", "b", "c"]], "/tags", "at most 2"),
        ("text", "/", "must be object"),
    ] as [(JSONValue, String, String)])
    func violations(_ input: (JSONValue, String, String)) {
        let v = schema.violations(of: input.0)
        #expect(v.contains { $0.path == input.1 && $0.message.contains(input.2) }, "\(v)")
    }

    @Test func registryValidatesEventsOfKnownTypes() throws {
        var registry = EventSchemaRegistry()
        registry.register(type: "t", schema: schema)
        let good = CloudEvent(source: "s", type: "t", json: ["dataset": "a", "url": "file:///a"])
        try registry.validate(good)
        let bad = CloudEvent(source: "s", type: "t", json: ["dataset": 5])
        #expect { try registry.validate(bad) } throws: { ($0 as? EventError)?.code == .schemaViolation }
        // Types with no schema pass.
        try registry.validate(CloudEvent(source: "s", type: "other", json: "anything"))
    }
}

@Suite struct ManifestTests {
    let valid = """
        name: train
        description: fits models
        run: { executable: fn-train }
        subscriptions:
          - type: [almanac.dataset.imported]
            data: { rows: [{ numeric: [">", 0] }] }
          - type: [almanac.accuracy.breached]
        emits: [almanac.predictor.trained]
        concurrency: 2
        timeout: 1h
        idleTimeout: 500ms
        retries: { maxAttempts: 5, initialBackoff: 1s, maxBackoff: 5m, multiplier: 3, jitter: 0.5 }
        resources: { gpu: preferred }
        environment: { THREADS: 2, MODE: fast }
        """

    @Test func loadsEveryField() throws {
        let m = try FunctionManifest(yaml: valid, file: "functions/train/function.yaml")
        #expect(m.name == "train")
        #expect(m.run == .executable("fn-train"))
        #expect(m.subscriptions.count == 2)
        #expect(m.emits == ["almanac.predictor.trained"])
        #expect(m.concurrency == 2)
        #expect(m.timeout == 3600)
        #expect(m.idleTimeout == 0.5)
        #expect(m.retries == .init(maxAttempts: 5, initialBackoff: 1, maxBackoff: 300, multiplier: 3, jitter: 0.5))
        #expect(m.gpu == .preferred)
        #expect(m.environment == ["THREADS": "2", "MODE": "fast"])
        #expect(m.directory == "functions/train")
        #expect(m.inputTopic == "almanac.fn.train")
        #expect(m.subscribes(to: CloudEvent(source: "s", type: "almanac.accuracy.breached", json: [:])))
        #expect(m.subscribes(to: CloudEvent(source: "s", type: "almanac.dataset.imported", json: ["rows": 2])))
        #expect(!m.subscribes(to: CloudEvent(source: "s", type: "almanac.dataset.imported", json: ["rows": 0])))
    }

    @Test("errors name the file and the field", arguments: [
        ("retries: { maxAttempts: 0 }", "functions/train/function.yaml: retries.maxAttempts must be ≥ 1, got 0"),
        ("resources: { gpu: sometimes }", "functions/train/function.yaml: resources.gpu must be required, preferred or none, got \"sometimes\""),
        ("timeout: soon", "functions/train/function.yaml: timeout must be a duration"),
        ("concurrency: -1", "functions/train/function.yaml: concurrency must be ≥ 1, got -1"),
        ("concurency: 2", "functions/train/function.yaml: concurency is not a known field"),
        ("retries: { jitter: 2 }", "functions/train/function.yaml: retries.jitter must be between 0 and 1"),
        ("timeout: 1e300", "functions/train/function.yaml: timeout must be at most 7 days"),
        ("idleTimeout: 9999999h", "functions/train/function.yaml: idleTimeout must be at most 7 days"),
        ("retries: { maxBackoff: .inf }", "functions/train/function.yaml: retries.maxBackoff must be"),
    ])
    func fieldErrors(_ input: (String, String)) {
        let yaml = "name: train\nrun: { executable: x }\nsubscriptions: [{ type: [a] }]\n" + input.0
        #expect {
            _ = try FunctionManifest(yaml: yaml, file: "functions/train/function.yaml")
        } throws: { error in
            "\(error)".hasPrefix(input.1)
        }
    }

    @Test func structuralErrors() {
        let cases = [
            ("run: { executable: x }\nsubscriptions: []", "name is required"),
            ("name: Bad Name\nrun: { executable: x }\nsubscriptions: []", "name must be"),
            ("name: a\nsubscriptions: []", "run is required"),
            ("name: a\nrun: { shell: x }\nsubscriptions: []", "run must be"),
            ("name: a\nrun: { executable: x }\nsubscriptions: [{ type: x }]", "subscriptions[0].type values must be in a list"),
            ("name: a\nrun: { executable: x }\nsubscriptions: [{ data: { n: [{ numeric: [\">\"] }] } }]", "subscriptions[0].data.n[0].numeric"),
            ("name: [", "is not valid YAML"),
        ]
        for (yaml, expected) in cases {
            #expect {
                _ = try FunctionManifest(yaml: yaml, file: "f.yaml")
            } throws: { "\($0)".contains(expected) }
        }
    }

    @Test func backoffGrowsCapsAndJitters() {
        let p = FunctionManifest.RetryPolicy(maxAttempts: 5, initialBackoff: 1, maxBackoff: 10, multiplier: 2, jitter: 0.2)
        #expect(p.backoff(afterAttempt: 1, random: 0.5) == 1)
        #expect(p.backoff(afterAttempt: 2, random: 0.5) == 2)
        #expect(p.backoff(afterAttempt: 3, random: 0.5) == 4)
        #expect(p.backoff(afterAttempt: 10, random: 0.5) == 10)
        #expect(p.backoff(afterAttempt: 2, random: 0) == 1.6)
        #expect(abs(p.backoff(afterAttempt: 2, random: 0.999999) - 2.4) < 1e-5)
    }
}

/// Tenant and dataset names become folder names: only slugs are names.
@Suite struct SlugTests {
    @Test func namesThatCannotLeaveTheirFolder() throws {
        for good in ["acme", "sales-2026", "a_b.c", "A1", String(repeating: "x", count: 63)] {
            #expect(Slug.isValid(good, maxLength: Slug.maxTenantLength), "\(good)")
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "../x", "a b", "naïve", "a\u{0}b", "tab\t", String(repeating: "x", count: 64)] {
            #expect(!Slug.isValid(bad, maxLength: Slug.maxTenantLength), "\(bad)")
        }
        #expect(throws: InvalidName.self) { try Slug.check("../..", what: "dataset", maxLength: 100) }
        let said = Slug.problem("a\u{1}/b", what: "tenant", maxLength: 63) ?? ""
        #expect(said.hasPrefix("tenant name \"a\\u0001/b\" is invalid"), "\(said)")
    }
}
