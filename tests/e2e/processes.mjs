// Stopping the programs the end-to-end tests start, without waiting forever for one that hangs.

/**
 * Sends SIGTERM and waits for the process to exit; one still running after `within` ms (beyond
 * keyway's default 10 s shutdown grace) is killed and the call fails. A process that has
 * already exited, by a code or by a signal, is left alone.
 */
export async function terminate(proc, within = 20_000) {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  proc.kill('SIGTERM');
  let timer;
  const late = new Promise((resolve) => { timer = setTimeout(() => resolve(true), within); });
  const overdue = await Promise.race([exited.then(() => false), late]);
  clearTimeout(timer);
  if (overdue) {
    proc.kill('SIGKILL');
    await exited;
    throw new Error(`${proc.spawnfile} did not exit within ${within} ms of SIGTERM`);
  }
}
