"""P6 for logins: the API's resident memory (psutil RSS, sampled every 50 ms) after 10 signups and during 3 rounds
of 10 concurrent logins, `odoosaas serve` without a worker on SQLite. Run: `.venv/bin/python bench/login_memory.py`."""
import os, subprocess, sys, time, threading, httpx, psutil, tempfile, shutil
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from odoosaas.pg.clusters import free_port
d = tempfile.mkdtemp(dir="/tmp"); os.chmod(d, 0o755); port = free_port()
env = {**os.environ, "ODOOSAAS_DATA_DIR": d, "PORT": str(port), "ODOOSAAS_WORKER": "false", "ODOOSAAS_TRAEFIK_PORT": "0",
       "ODOOSAAS_RATE_LIMIT": "10000 per minute", "ODOOSAAS_LOG_LEVEL": "WARNING"}
p = subprocess.Popen([str(__import__("pathlib").Path(sys.executable).parent / "odoosaas"), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
url = f"http://127.0.0.1:{port}"
for _ in range(100):
    try: httpx.get(url + "/healthz"); break
    except httpx.HTTPError: time.sleep(0.2)
proc = psutil.Process(p.pid); peak = [0]; stop = threading.Event()
def sample():
    while not stop.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss); time.sleep(0.05)
threading.Thread(target=sample, daemon=True).start()
users = [f"u{i}@example.com" for i in range(10)]
for u in users: httpx.post(url + "/api/v1/auth/signup", json={"email": u, "password": "correct-horse"}, timeout=30)
steady = proc.memory_info().rss
def login(u):
    httpx.post(url + "/api/v1/auth/login", json={"email": u, "password": "correct-horse"}, timeout=60)
for _ in range(3):
    ts = [threading.Thread(target=login, args=(u,)) for u in users]; [t.start() for t in ts]; [t.join() for t in ts]
    for _ in range(50): httpx.get(url + "/api/v1/subdomains/abcde")
stop.set(); time.sleep(0.1)
print("| figure | MB | target |\n|---|---|---|")
print(f"| API resident after 10 signups | {steady / 2**20:.0f} | |\n| API peak, 3 x 10 concurrent logins | {peak[0] / 2**20:.0f} | <= 150 |")
import json
print(json.dumps({"bench": "login_memory", "steady_mb": round(steady / 2**20), "peak_mb": round(peak[0] / 2**20)}))
p.terminate(); p.wait(); shutil.rmtree(d, ignore_errors=True)
