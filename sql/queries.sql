-- Named queries of the bridge and the trainer. Each sits under a `-- name: NAME` header with a
-- one-line description; mlbridge.db.query(NAME) returns it. Placeholders are %s (mysql-connector).

-- name: record_model_version
-- The trainer records a version it exported (the bridge's server sync never overwrites these fields).
INSERT INTO models (name, version, state, task, inputs, outputs, score_output, label, metrics, trained_on, source)
VALUES (%s, %s, 'available', %s, %s, %s, %s, %s, %s, %s, 'trainer')
ON DUPLICATE KEY UPDATE state = 'available', task = VALUES(task), inputs = VALUES(inputs),
  outputs = VALUES(outputs), score_output = VALUES(score_output), label = VALUES(label),
  metrics = VALUES(metrics), trained_on = VALUES(trained_on), source = 'trainer', error = NULL;

-- name: max_model_version
-- The newest version the catalog knows of a model (the trainer numbers past it and the disk).
SELECT COALESCE(MAX(version), 0) FROM models WHERE name = %s;
