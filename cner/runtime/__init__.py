"""Running a model: device and precision choices, and the one function that prepares a model
for them (`cner.runtime.engine.prepare_engine`: attention kernel, weight cast, packing,
compilation)."""
