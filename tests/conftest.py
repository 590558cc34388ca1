import os
# Keep the CPU runs small and repeatable: two cores on CI and on the developers' machines.
os.environ.setdefault('OMP_NUM_THREADS', '2')
