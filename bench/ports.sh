# Sourced by the benchmark scripts (from the repository's root). `take_ports VAR...` sets each
# VAR to a distinct free port, taken as the end-to-end tests take them (tests/e2e/ports.mjs:
# below the kernel's ephemeral range, so no outgoing connection can take one before its server
# binds it), and fails with a message when it cannot.
take_ports() {
  local ports
  ports=$(node --input-type=module -e "
    import { freePort } from './tests/e2e/ports.mjs';
    const ports = [];
    for (let i = 0; i < Number(process.argv[1]); i++) ports.push(await freePort());
    console.log(ports.join(' '));
  " "$#") && read -r "$@" <<< "$ports" && [[ -n "${!#}" ]] \
    || { echo "no free ports for $* (needs node and tests/e2e/ports.mjs)" >&2; return 1; }
}
