import pytest_twisted
from twisted.internet import defer
from prometheus_client import CollectorRegistry
from storage.datastore import open_datastore

@pytest_twisted.ensureDeferred
async def test_probe(database_config, reactor, sealer):
    reg = CollectorRegistry()
    ds = await open_datastore(database_config, reactor, sealer, metrics_registry=reg)
    def iso(txn, rc):
        if rc: txn.set_read_committed()
        txn.execute("SHOW transaction_isolation"); return txn.fetchone()
    print(await ds.db.run_interaction("x", iso, False), await ds.db.run_interaction("x", iso, True), await ds.db.run_interaction("x", iso, False))
    await ds.registration_tokens.create_registration_token("many", None, None)
    r = await defer.gatherResults([defer.ensureDeferred(ds.registration_tokens.set_token_pending("many", 0)) for _ in range(40)])
    r2 = await defer.gatherResults([defer.ensureDeferred(ds.users.register_user("@a:b", None, 0)) for _ in range(10)])
    print(sum(r), sum(r2), [(s.labels, s.value) for m in reg.collect() for s in m.samples if "retries_total" in s.name])
    await ds.close()
