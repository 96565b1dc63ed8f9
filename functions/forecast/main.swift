import AlmanacPipeline
import AlmanacFunctions

// The forecast function: a predictor and the latest data → a stored forecast (see ForecastFunction).
await FunctionMain.run(ForecastFunction())
