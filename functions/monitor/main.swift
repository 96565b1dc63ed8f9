import AlmanacPipeline
import AlmanacFunctions

// The monitor function: the live forecast's error on new actuals → accuracy.breached (see MonitorFunction).
await FunctionMain.run(TypedHandler(MonitorFunction()))
