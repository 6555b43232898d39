import sys, time, json, os
from dataclasses import replace
from controller.sim import traces, scenario, engine
from controller.decide import planner
model = sys.argv[2] if len(sys.argv) > 2 else "naive"
startup = float(sys.argv[3]) if len(sys.argv) > 3 else 120.0
over = json.loads(os.environ.get("P", "{}"))
fo = json.loads(os.environ.get("F", "{}"))
engine.FORECASTER_OPTIONS["auto"].update(fo)
beh = over.pop("down_window", None)
orig = planner.PlannerParams
def patched(**kw):
    p = orig(**{**kw, **over})
    if beh is not None:
        b = p.behavior
        p = replace(p, behavior=replace(b, scale_down=replace(b.scale_down, stabilization_window_seconds=beh)))
    return p
engine.planner.PlannerParams = patched
for path in sys.argv[1].split(","):
    t=traces.load_trace(path)
    sc=scenario.scenario_from_trace(t)
    res = {}
    for p in ("hpa","scaleahead"):
        r=engine.run(sc,p,engine.SimConfig(forecast_model=model, startup_seconds=startup))
        res[p]=r.score
    h, s = res["hpa"], res["scaleahead"]
    ok1 = s.unserved_pct <= h.unserved_pct and s.pod_hours <= h.pod_hours
    ok2 = s.unserved_pct <= max(h.unserved_pct/3, 0.05)
    print(f"{s.trace:26s} hpa u={h.unserved_pct:6.3f} c={h.cost_ratio:5.3f} a={h.scale_actions:6d} | sa u={s.unserved_pct:6.3f} c={s.cost_ratio:5.3f} a={s.scale_actions:6d} w={s.wall_seconds:5.1f} {'OK' if ok1 else '--'}{'+' if ok2 else ' '}{'A' if s.scale_actions<=h.scale_actions else ' '}", flush=True)
