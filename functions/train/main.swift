import AlmanacPipeline
import AlmanacFunctions

// The train function: AutoML with backtests per item → a predictor (see TrainFunction).
await FunctionMain.run(TrainFunction())
