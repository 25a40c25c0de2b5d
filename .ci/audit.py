"""Known vulnerabilities in the pinned dependencies (pip-audit over requirements.lock), as a report.

Fails when pip-audit finds a vulnerability. A dependency the vulnerability service cannot be asked
about (no network, a registry mirror without per-version metadata) is counted and named as NOT
audited — pip-audit itself would say "No known vulnerabilities found" for those, which is not true.
"""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    done = subprocess.run([sys.executable, "-m", "pip_audit", "-r", str(ROOT / "requirements.lock"), "-f", "json",
                           "--progress-spinner", "off"], capture_output=True, text=True, timeout=600)
    try:
        deps = json.loads(done.stdout)["dependencies"]
    except (ValueError, KeyError):
        print(f"pip-audit could not run, nothing audited: {done.stderr.strip()[-500:]}")
        return 0
    vulnerable = [d for d in deps if d.get("vulns")]
    skipped = [d for d in deps if d.get("skip_reason")]
    audited = len(deps) - len(skipped)
    for d in vulnerable:
        ids = ", ".join(v["id"] for v in d["vulns"])
        print(f"VULNERABLE {d['name']} {d.get('version', '')}: {ids}")
    print(f"pip-audit: {len(deps)} pinned packages, {audited} audited, {len(vulnerable)} with known "
          f"vulnerabilities, {len(skipped)} NOT audited (the vulnerability service did not know them"
          f"{', e.g. ' + skipped[0]['name'] if skipped else ''} — offline or a mirror without per-version data)")
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main())
