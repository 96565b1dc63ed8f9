import AlmanacControlPlane
import AlmanacPostgres
import Foundation

/// The one statement of the QueryForecast path (`GET /v1/datasets/{name}/forecast?item=…`): the
/// bearer token's credential (as `TenantDirectory` reads it) and the forecast live for the item
/// in the token's tenant, read together (an index probe each), so that a kept answer costs
/// one round trip. A prepared statement: it runs on every such request.
enum ForecastProbe {
    /// What the probe found.
    struct Found: Sendable {
        /// The token's credential, when it is a working token.
        var credential: Credential?
        /// The live forecast of the item in the credential's tenant, when there is one.
        var liveForecastID: String?
    }

    /// Checks the token (its digest) and reads the item's live forecast id.
    static func run(tokenDigest: String, dataset: String, item: String, in db: PostgresConnection) async throws -> Found {
        let row = try await db.query(prepared: """
            WITH \(TenantDirectory.credentialQuery)
            SELECT c.*, (SELECT l.forecast_id FROM latest_forecasts l
                         WHERE l.tenant = c.token_tenant AND l.dataset = $2 AND l.item_id = $3 LIMIT 1) AS forecast_id
            FROM credential c
            """, [tokenDigest, dataset, item]).first
        return Found(credential: try row.flatMap(TenantDirectory.credential(from:)), liveForecastID: row?.text("forecast_id"))
    }
}
