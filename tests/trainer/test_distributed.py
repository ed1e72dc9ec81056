"""Training one network across two workers with tf.distribute.MultiWorkerMirroredStrategy: two
`mlbridge train` processes on this machine, each reading its own slice of the key's range."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from mlbridge import db

from ..procs import REPO, free_port


def test_two_workers_train_one_model(tdsn, tmp_path, cancer_table):
    features = ", ".join(cancer_table["features"])
    workers = f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    procs = [
        subprocess.Popen([sys.executable, "-m", "mlbridge", "train", "--dsn", str(tdsn), "--model-base", str(tmp_path),
                          "--query", f"SELECT id, {features}, target FROM tr_cancer", "--label", "target",
                          "--model", "tr_two_workers", "--model-type", "mlp", "--epochs", "8", "--batch-size", "32",
                          "--workers", workers, "--worker-index", str(i)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
        for i in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    # each worker read its own slice of the ids: 1..285 and 286..569
    slices = [re.search(r"worker (\d) of 2 reads keys \((\d+), (\d+)\)", err).groups() for _, err in outs]
    assert slices == [("0", "1", "286"), ("1", "286", "570")]
    assert "worker 0 publishes the version" in outs[1][0]
    assert "model tr_two_workers:1 (binary, mlp)" in outs[0][0]
    assert (tmp_path / "tr_two_workers" / "1" / "saved_model.pb").is_file()
    assert [p.name for p in (tmp_path / "tr_two_workers").iterdir()] == ["1"]
    conn = db.connect(tdsn)
    cur = conn.cursor()
    cur.execute("SELECT model_type, metrics FROM models WHERE name = 'tr_two_workers'")
    model_type, metrics = cur.fetchone()
    conn.close()
    assert model_type == "mlp" and json.loads(metrics)["auc"] > 0.9
