-- The trainer's models: which kind each version is, and tasks beyond binary and regression.
ALTER TABLE models
  MODIFY task VARCHAR(32) NULL COMMENT 'regression | binary | multiclass; NULL when the server found it',
  ADD COLUMN model_type VARCHAR(32) NULL COMMENT 'linear | mlp | gbt (the trainer''s); NULL when the server found it' AFTER task,
  MODIFY inputs JSON NOT NULL COMMENT '[{"name", "dtype", "shape", "missing", "kind"}] in signature order',
  MODIFY metrics JSON NULL COMMENT 'test metrics from training, with the validation metrics of each model tried';
