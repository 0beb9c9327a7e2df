"""Proves that tests/monitoring/alerts.test.yaml tests every alerting rule both ways, by mutation.

    coverage.py PROMTOOL RULES.yaml TEST.yaml

For each rule of RULES.yaml (a Prometheus rule file), `promtool test rules` runs TEST.yaml twice
against a copy of the rules with that one rule changed:

- deleted: the tests must fail, so some expected alert can only come from this rule (it is
  tested firing);
- `(EXPR) or on() vector(1)`: the rule now fires, without labels, whenever it would have been
  silent; the tests must fail, so some test expects this alert name to stay silent past the rule's
  `for` (it is tested silent).

Also runs TEST.yaml against RULES.yaml itself, which must pass. Prints one `  PASS  …` or
`  FAIL  …` line per check and exits 1 if any failed.
"""

import copy
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml


def run_tests(promtool, rules, tests, work, tag):
    """Runs the unit tests against `rules` (a parsed rule file); True if they pass."""
    rules_path = work / f"rules-{tag}.yaml"
    rules_path.write_text(yaml.safe_dump(rules, sort_keys=False))
    suite = dict(tests, rule_files=[str(rules_path)])
    suite_path = work / f"tests-{tag}.yaml"
    suite_path.write_text(yaml.safe_dump(suite, sort_keys=False))
    p = subprocess.run([promtool, "test", "rules", str(suite_path)], capture_output=True, text=True)
    return p.returncode == 0, (p.stdout + p.stderr).strip()


def alerting_rules(rules):
    for gi, group in enumerate(rules["groups"]):
        for ri, rule in enumerate(group["rules"]):
            if "alert" in rule:
                yield gi, ri, rule


def describe(rule):
    labels = ", ".join(f"{k}={v}" for k, v in sorted((rule.get("labels") or {}).items()))
    return f"{rule['alert']} ({labels})" if labels else rule["alert"]


def main():
    promtool, rules_file, tests_file = sys.argv[1:4]
    rules = yaml.safe_load(Path(rules_file).read_text())
    tests = yaml.safe_load(Path(tests_file).read_text())
    failed = 0

    def report(ok, what, detail=""):
        nonlocal failed
        print(f"  {'PASS' if ok else 'FAIL'}  {what}")
        if not ok:
            failed += 1
            for line in detail.splitlines()[:40]:
                print(f"        {line}")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ok, out = run_tests(promtool, rules, tests, work, "as-is")
        report(ok, f"promtool test rules {tests_file}: every test passes on the chart's rules", out)
        if not ok:
            return 1
        n = 0
        for gi, ri, rule in alerting_rules(rules):
            n += 1
            deleted = copy.deepcopy(rules)
            del deleted["groups"][gi]["rules"][ri]
            if not deleted["groups"][gi]["rules"]:
                del deleted["groups"][gi]
            ok, _ = run_tests(promtool, deleted, tests, work, f"{n}-deleted")
            report(not ok, f"{describe(rule)}: tested firing (the tests fail without this rule)")
            always = copy.deepcopy(rules)
            target = always["groups"][gi]["rules"][ri]
            target["expr"] = f"({rule['expr'].strip()}) or on() vector(1)"
            ok, _ = run_tests(promtool, always, tests, work, f"{n}-always")
            report(not ok, f"{describe(rule)}: tested silent (the tests fail if it fires whenever it is silent)")
        report(n > 0, f"{n} alerting rules in {rules_file}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
