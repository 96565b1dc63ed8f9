import AlmanacCore
import AlmanacKafka
import AlmanacPostgres
import Foundation

/// An event (or record) that could not be handled, kept with why and its original bytes.
public struct DeadLetter: Sendable {
    /// `router`, or the function that gave up.
    public var stage: String
    /// The event id, when the record decoded.
    public var eventID: String?
    /// The event's source, when the record decoded (with tenant and id, what names the event).
    public var eventSource: String?
    /// The event type, when the record decoded.
    public var eventType: String?
    /// The tenant, when known.
    public var tenant: String
    /// A short machine-readable reason (`undecodable`, `invalid_event`, `schema_violation`, `unstorable`, `handler_failed`, `deadline_exceeded`, `crashed`).
    public var errorCode: String
    /// The full explanation.
    public var error: String
    /// How many attempts were made.
    public var attempts: Int
    /// The topic, partition and offset the record came from.
    public var sourceTopic: String
    /// The partition it came from.
    public var sourcePartition: Int32?
    /// The offset it came from.
    public var sourceOffset: Int64?
    /// The original record key.
    public var key: Data?
    /// The original record value.
    public var value: Data?
    /// The original record headers.
    public var headers: [(String, Data)]

    /// A dead letter for a consumed record.
    public init(stage: String, record: KafkaRecord, event: CloudEvent?, errorCode: String, error: String, attempts: Int) {
        self.stage = stage
        self.eventID = event?.id
        self.eventSource = event?.source
        self.eventType = event?.type
        self.tenant = event?.tenant ?? "default"
        self.errorCode = errorCode
        self.error = error
        self.attempts = attempts
        self.sourceTopic = record.topic
        self.sourcePartition = record.partition
        self.sourceOffset = record.offset
        self.key = record.key
        self.value = record.value
        self.headers = record.headers
    }

    /// The topic every dead letter is also produced to.
    public static let topic = "almanac.deadletters"

    /// Headers as stored in `record_headers`: `[[name, base64], …]`.
    public static func encodeHeaders(_ headers: [(String, Data)]) -> JSONValue {
        .array(headers.map { .array([.string($0.0), .string($0.1.base64EncodedString())]) })
    }

    /// Headers read back from `record_headers`.
    public static func decodeHeaders(_ json: JSONValue?) -> [(String, Data)] {
        (json?.arrayValue ?? []).compactMap { pair in
            guard let p = pair.arrayValue, p.count == 2, let n = p[0].stringValue, let v = p[1].stringValue,
                  let d = Data(base64Encoded: v) else { return nil }
            return (n, d)
        }
    }
}

/// The dead-letter table and topic.
public enum DeadLetterStore {
    /// Inserts a dead letter; a second one for the same stage and event (tenant, source, id)
    /// while the first is open is ignored.
    /// - Returns: the new row's id, or nil when it was already there.
    @discardableResult
    public static func insert(_ letter: DeadLetter, into db: any PostgresExecutor) async throws -> Int64? {
        let rows = try await db.query("""
            INSERT INTO dead_letters (stage, event_id, event_type, tenant, error_code, error, attempts, source_topic,
                                      source_partition, source_offset, record_key, record_value, record_headers, event_source)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14)
            ON CONFLICT DO NOTHING RETURNING id
            """, [storable(letter.stage), letter.eventID.map(storable), letter.eventType.map(storable), storable(letter.tenant),
                  letter.errorCode, storable(letter.error),
                  letter.attempts, letter.sourceTopic, letter.sourcePartition, letter.sourceOffset, letter.key, letter.value,
                  DeadLetter.encodeHeaders(letter.headers).serialized(), letter.eventSource.map(storable)])
        return try rows.first?.decode("id", as: Int64.self)
    }

    /// Text Postgres can store: a NUL (which `text` cannot hold, and which would cut a
    /// bound parameter short) written as `\u0000`. The original bytes stay in the record columns.
    static func storable(_ text: String) -> String {
        text.utf8.contains(0) ? text.replacingOccurrences(of: "\u{0}", with: "\\u0000") : text
    }

    /// Produces the original record to `almanac.deadletters`, with the reason in `almanac-dlq-*` headers.
    public static func publish(_ letter: DeadLetter, producer: KafkaProducer) async throws {
        var headers = letter.headers
        headers.append(("almanac-dlq-stage", Data(letter.stage.utf8)))
        headers.append(("almanac-dlq-error-code", Data(letter.errorCode.utf8)))
        headers.append(("almanac-dlq-error", Data(letter.error.prefix(4000).utf8)))
        headers.append(("almanac-dlq-attempts", Data("\(letter.attempts)".utf8)))
        try await producer.send(topic: DeadLetter.topic, key: letter.key, value: letter.value, headers: headers)
    }
}

extension DeadLetterStore {
    /// Sends open dead letters back where they failed — a function's input topic, or the bus
    /// for the router — after clearing the function's processed mark, so the event runs again.
    /// - Parameters:
    ///   - ids: dead letters to redrive.
    ///   - all: redrive every open one (of `stage`, when given) as well.
    /// - Returns: each redriven id and the topic it went to.
    @discardableResult
    public static func redrive(ids: [Int64], all: Bool = false, stage: String? = nil, db: PostgresConnection,
                               producer: KafkaProducer) async throws -> [(id: Int64, topic: String)] {
        let rows = try await db.query("""
            SELECT id, stage, event_id, tenant, coalesce(event_source, '') AS event_source, record_key, record_value,
                   record_headers::text AS headers FROM dead_letters
            WHERE status = 'open' AND (($1 AND ($2::text IS NULL OR stage = $2)) OR id = ANY($3::bigint[])) ORDER BY id
            """, [all, stage, ids])
        var done: [(Int64, String)] = []
        for r in rows {
            let id = try r.decode("id", as: Int64.self)
            let stage = try r.decode("stage", as: String.self)
            let topic = stage == "router" ? Outbox.busTopic : FunctionManifest.inputTopic(for: stage)
            let headers = DeadLetter.decodeHeaders(try? JSONValue(parsing: r.text("headers") ?? "[]"))
            // The processed mark goes first (the function must not skip the event when it comes
            // back); the letter is marked redriven only once Kafka acknowledged the record, so a
            // failed produce leaves it open to redrive again.
            if let eventID = r.text("event_id") {
                try await db.exec("""
                    DELETE FROM processed_events
                    WHERE function = $1 AND tenant = $3 AND source = $4 AND event_id = $2 AND outcome = 'dead_lettered'
                    """, [stage, eventID, try r.decode("tenant", as: String.self), try r.decode("event_source", as: String.self)])
            }
            try await producer.send(topic: topic, key: try r.decodeIfPresent("record_key", as: Data.self),
                                    value: try r.decodeIfPresent("record_value", as: Data.self), headers: headers)
            try await db.exec("UPDATE dead_letters SET status = 'redriven', redriven_at = now() WHERE id = $1", [id])
            done.append((id, topic))
        }
        return done
    }
}

extension DeadLetterStore {
    /// Dead letters not yet redriven or discarded, counted per stage (every tenant's: `almanac status`, `/metrics`).
    public static func openByStage(in db: PostgresConnection) async throws -> [(stage: String, count: Int)] {
        try await db.query("SELECT stage, count(*)::bigint AS n FROM dead_letters WHERE status = 'open' GROUP BY stage ORDER BY stage")
            .map { (try $0.decode("stage"), try $0.decode("n")) }
    }

    /// A tenant's dead letter as the API lists it.
    public struct Row: Sendable, Equatable {
        /// Its id.
        public var id: Int64
        /// Where it failed: `router` or a function's name.
        public var stage: String
        /// The event's id and type.
        public var eventID: String, eventType: String?
        /// Why, and the code.
        public var errorCode: String, error: String
        /// Attempts made.
        public var attempts: Int
        /// `open`, `redriven` or `discarded`.
        public var status: String
        /// When it was dead-lettered.
        public var createdAt: Date
        /// The original record's value (`find` only).
        public var recordValue: Data?
    }

    /// The tenant's dead letters of events that decoded (a record that did not cannot be told to
    /// be the tenant's), newest first: those of `status` (`all` for every one) below id `before`.
    public static func list(tenant: String, status: String, before: Int64?, limit: Int, in db: PostgresConnection) async throws -> [Row] {
        try await db.query("""
            SELECT id, stage, event_id, event_type, error_code, error, attempts, status, created_at FROM dead_letters
            WHERE tenant = $1 AND event_id IS NOT NULL AND ($2 = 'all' OR status = $2) AND ($3::bigint IS NULL OR id < $3)
            ORDER BY id DESC LIMIT $4
            """, [tenant, status, before, limit]).map { try row($0, record: false) }
    }

    /// The tenant's dead letter `id`, with its original record, or nil.
    public static func find(tenant: String, id: Int64, in db: PostgresConnection) async throws -> Row? {
        try await db.query("""
            SELECT id, stage, event_id, event_type, error_code, error, attempts, status, created_at, record_value FROM dead_letters
            WHERE tenant = $1 AND event_id IS NOT NULL AND id = $2
            """, [tenant, id]).first.map { try row($0, record: true) }
    }

    private static func row(_ r: PostgresRow, record: Bool) throws -> Row {
        Row(id: try r.decode("id"), stage: try r.decode("stage"), eventID: try r.decode("event_id"), eventType: r.text("event_type"),
            errorCode: try r.decode("error_code"), error: try r.decode("error"), attempts: try r.decode("attempts"),
            status: try r.decode("status"), createdAt: try r.decode("created_at"),
            recordValue: record ? try r.decodeIfPresent("record_value", as: Data.self) : nil)
    }
}
