-- model_queries's DEFINER half: the versions trained by the account _caller names.
-- execute: mlbridge_user
CREATE PROCEDURE _model_queries(IN p_model VARCHAR(64))
  SQL SECURITY DEFINER
  READS SQL DATA
BEGIN
  DECLARE v_owner VARCHAR(400);
  CALL _caller(v_owner);
  SELECT name, version, trained_by, created_at AS trained_at, trained_on
    FROM model_versions
   WHERE (p_model IS NULL OR name = p_model) AND trained_on IS NOT NULL AND trained_by = v_owner
   ORDER BY name, version;
END
