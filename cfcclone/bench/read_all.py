"""`python -m cfcclone.bench.read_all DIR SEQ`: read every window of a dataset, print JSON.

Run in a fresh process by the peak-RSS figure. ru_maxrss is no use there: Linux carries the
parent's peak across fork and exec into the child's. VmHWM is the peak of this process's own
memory map, which exec made new.
"""

import json
import resource
import sys
import time

from cfcclone.data import SequenceDataset


def kib(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key))


def main(root: str, seq_len: int) -> dict:
    ds = SequenceDataset(root, seq_len, "all")
    opened, frames, t0 = kib("VmRSS:"), 0, time.perf_counter()
    for batch in ds.batches(32):
        obs = batch.obs.contiguous()
        frames += obs.shape[0] * obs.shape[1]
    return {
        "frames": frames,
        "seconds": time.perf_counter() - t0,
        "windows": len(ds),
        "opened_kib": opened,
        "peak_kib": kib("VmHWM:"),
        "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]))))
