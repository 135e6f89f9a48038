"""`make bench`: the benchmark of the resource server's per-request cost and of the auth server
under load (bench/run.py), its reference apps (bench/apps.py) and the profiler (bench/profile.py).
"""
