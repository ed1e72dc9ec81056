-- CALL mlbridge.model_queries('churn')
-- The queries model versions were trained on: (name, version, trained_by, trained_at, trained_on),
-- of every version for admins (accounts that may read mlbridge.model_versions), and of the
-- versions the caller trained for everyone else. NULL lists every model. The catalog view leaves
-- the query out because a DEFINER view cannot tell who reads it (CURRENT_USER() is its definer).
-- execute: mlbridge_user
CREATE PROCEDURE model_queries(IN p_model VARCHAR(64))
  SQL SECURITY INVOKER
  READS SQL DATA
  COMMENT 'mlbridge: the training queries of the model versions you trained (admins: all)'
BEGIN
  DECLARE v_admin BOOLEAN DEFAULT TRUE;
  BEGIN
    DECLARE CONTINUE HANDLER FOR 1142, 1143 SET v_admin = FALSE;
    DO (SELECT COUNT(*) FROM model_versions WHERE FALSE);
  END;
  IF v_admin THEN
    SELECT name, version, trained_by, created_at AS trained_at, trained_on
      FROM model_versions
     WHERE (p_model IS NULL OR name = p_model) AND trained_on IS NOT NULL
     ORDER BY name, version;
  ELSE
    CALL _attest();
    CALL _model_queries(p_model);
  END IF;
END
