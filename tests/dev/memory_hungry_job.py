"""A job that holds `megabytes` of memory: run by LocalRunLauncher in the cgroup tests."""

import os
import time

import dagster as dg


@dg.op(config_schema={"megabytes": int, "seconds": dg.Field(float, default_value=0.0)})
def hold_memory(context) -> int:
    block = bytearray(context.op_config["megabytes"] << 20)
    # Touch every page so the memory is really charged to the cgroup.
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    context.log.info(f"held {len(block) >> 20} MiB")
    context.log.info(f"scratch dir {os.environ.get('LAKEPORT_RUN_SCRATCH_DIR')}")
    time.sleep(context.op_config["seconds"])
    return len(block)


# One process: the worker itself is what the cgroup limits, as in a run pod.
@dg.job(executor_def=dg.in_process_executor)
def memory_hungry_job():
    hold_memory()
