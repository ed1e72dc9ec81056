-- SELECT name, version, state, task, model_type, labels, metrics FROM mlbridge.models
-- The catalog: one row per model version. `state` is what the model server reports (available,
-- unavailable, failed) or `retired` (model_retire); `label` is the column it was trained to
-- predict and `labels` its version labels (name@label), as a JSON array. The training query is
-- left out: CALL mlbridge.model_queries(name) shows it to the account that trained the version
-- and to admins. DEFINER, so callers read it with SELECT on the view alone.
-- select: mlbridge_user
CREATE OR REPLACE SQL SECURITY DEFINER VIEW `{{schema}}`.`models` AS
SELECT v.name, v.version, v.state, v.task, v.model_type, v.inputs, v.outputs, v.score_output, v.label,
       COALESCE((SELECT JSON_ARRAYAGG(l.label) FROM `{{schema}}`.`model_labels` AS l
                  WHERE l.name = v.name AND l.version = v.version), JSON_ARRAY()) AS labels,
       v.metrics, v.trained_by, v.source, v.error, v.created_at, v.updated_at, v.retired_at
  FROM `{{schema}}`.`model_versions` AS v;
