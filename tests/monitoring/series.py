"""Every series the chart's alerts and dashboard name exists in what a real Prometheus scraped.

Used by tests/runtime/driver.py once a Prometheus server has scraped a running sidecar, node agent
and webhook (labelled as the chart's PodMonitors label them: mode, namespace, pod, node). For each
PromQL expression of the rendered PrometheusRule and of the rendered dashboard (panels and template
variables, Grafana's variables replaced as Grafana would with "All" selected):

- the server evaluates it without error;
- every vector selector in it, with its label matchers (Grafana's `$namespace`-style matchers
  dropped), matches at least one series in the server (`/api/v1/series`): a rule or panel on a
  metric, or a label value, the agents do not export fails here;
- every label it groups or matches by (`by`, `on`, `ignoring`, `group_left`, `label_values`)
  is on at least one of those series.
"""

import json
import re
import urllib.error
import urllib.parse
import urllib.request

import promql_parser

GRAFANA_INTERVALS = re.compile(r"\$__(rate_interval|interval|range)|\$\{__(rate_interval|interval|range)\}")
GRAFANA_VAR = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def expressions(docs):
    """(where, PromQL, grouping labels named outside the expression) of a chart render's rules and
    dashboards."""
    for d in docs:
        if d.get("kind") == "PrometheusRule":
            for g in d["spec"]["groups"]:
                for r in g["rules"]:
                    yield f"rule {r.get('alert') or r.get('record')}", str(r["expr"]), set()
        if d.get("kind") == "ConfigMap" and "grafana_dashboard" in d.get("metadata", {}).get("labels", {}):
            for key, value in (d.get("data") or {}).items():
                dash = json.loads(value)
                for p in panels(dash.get("panels", [])):
                    for t in p.get("targets", []):
                        yield f"{key} panel {p.get('title')!r} {t.get('refId')}", t["expr"], set()
                for v in dash.get("templating", {}).get("list", []):
                    if v.get("type") != "query":
                        continue
                    q = v.get("query")
                    q = q.get("query") if isinstance(q, dict) else q
                    m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\)\s*", q)
                    if m:
                        yield f"{key} variable {v['name']}", m.group(1), {m.group(2)}
                    else:
                        yield f"{key} variable {v['name']}", q, set()


def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get("panels", []))


def grafana_to_promql(expr):
    """Grafana's interpolation with every variable at "All" (`.*`) and a 1m rate interval."""
    expr = GRAFANA_INTERVALS.sub("1m", expr)
    return GRAFANA_VAR.sub(".*", expr)


def parts(expr_text):
    """(selectors as (metric name, [(label, op, value)]), labels used by grouping or matching)."""
    sels, labels = [], set()

    def visit(node):
        kind = type(node).__name__
        if kind == "VectorSelector":  # also reached inside a MatrixSelector
            matchers = [(m.name, str(m.op).split(".")[-1], m.value) for m in node.matchers.matchers]
            sels.append((node.name, matchers))
        elif kind == "AggregateExpr" and node.modifier is not None:
            labels.update(node.modifier.labels)
        elif kind == "BinaryExpr" and node.modifier is not None:
            if node.modifier.matching is not None:
                labels.update(node.modifier.matching.labels)
            labels.update(node.modifier.group_labels or [])
        return True

    promql_parser.walk(promql_parser.parse(expr_text), visit, None)
    return sels, labels


OPS = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}


def selector_text(name, matchers):
    kept = [f'{label}{OPS[op]}"{value}"' for label, op, value in matchers
            if label != "__name__" and "$" not in value]
    return name + "{" + ", ".join(kept) + "}"


class Prometheus:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def get(self, path, **params):
        query = urllib.parse.urlencode(params, doseq=True)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as r:
            body = json.load(r)
        if body.get("status") != "success":
            raise RuntimeError(f"{path}: {body}")
        return body["data"]

    def series(self, selector):
        return self.get("/api/v1/series", **{"match[]": selector})

    def query(self, expr):
        try:
            return self.get("/api/v1/query", query=expr), None
        except urllib.error.HTTPError as e:
            return None, e.read().decode()[:300]


def check(report, prom, docs):
    """Reports one check per expression of the rendered chart `docs`; returns how many there were."""
    n = 0
    for where, raw, extra_labels in expressions(docs):
        n += 1
        expr = grafana_to_promql(raw)
        problems = []
        try:
            sels, labels = parts(expr)
        except Exception as e:  # noqa: BLE001 - a parse failure is the finding
            report.check(f"{where}: parses", False, f"{e}: {raw!r}")
            continue
        labels |= extra_labels
        _, error = prom.query(expr)
        if error:
            problems.append(f"Prometheus cannot evaluate it: {error}")
        seen_labels = set()
        names = []
        for name, matchers in sels:
            if name is None:
                problems.append(f"a selector without a metric name: {matchers}")
                continue
            sel = selector_text(name, matchers)
            names.append(sel)
            found = prom.series(sel)
            if not found:
                problems.append(f"{sel}: no such series scraped")
            for s in found:
                seen_labels.update(s)
        for label in sorted(labels - seen_labels):
            problems.append(f"label {label!r} (grouping or matching) is on none of the series of {names}")
        report.check(f"{where}: {', '.join(names)}", not problems, "\n".join(problems))
    return n
