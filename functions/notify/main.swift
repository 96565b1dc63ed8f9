import AlmanacPipeline
import AlmanacFunctions
import Foundation

// The notify function: events → signed webhook deliveries with retries (see NotifyFunction).
// ALMANAC_WEBHOOK_RETRY_SCALE shrinks the retry schedule (tests use it).
let scale = ProcessInfo.processInfo.environment["ALMANAC_WEBHOOK_RETRY_SCALE"].flatMap(Double.init) ?? 1
await FunctionMain.run(NotifyFunction(schedule: RetrySchedule(scale: scale)))
