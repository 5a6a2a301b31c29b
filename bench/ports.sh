# Sourced by the benchmark scripts (from the repository's root): `free_ports N` prints N distinct
# free ports, taken as the end-to-end tests take them (tests/e2e/ports.mjs: below the kernel's
# ephemeral range, so no outgoing connection can take one before its server binds it).
free_ports() {
  node --input-type=module -e "
    import { freePort } from './tests/e2e/ports.mjs';
    const ports = [];
    for (let i = 0; i < Number(process.argv[1]); i++) ports.push(await freePort());
    console.log(ports.join(' '));
  " "$1"
}
