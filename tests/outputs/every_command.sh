#!/usr/bin/env bash
# Runs every drifa command once on one small run and leaves every output under OUT: the
# reference a restructuring is held to (tests/outputs/compare.py compares two such folders).
#   tests/outputs/every_command.sh DRIFA_BINARY OUT
# Two threads and fixed seeds: the same binary gives the same files on the same machine.
set -euo pipefail
drifa=$(realpath "$1")
out=$2
rm -rf "$out"
mkdir -p "$out"
cd "$out"
export DRIFA_THREADS=2
d() { "$drifa" -q "$@"; }

d synth -o data --size 32 --train-per-class 10 --test-per-class 4 --seed 5
cat > data/run.toml <<'EOF'
seed = 3
[model]
widths = "tiny"
dropout = 0.1
bn_momentum = 0.1
[data]
image_size = 32
workers = 2
[[data.modality]]
name = "derm"
train = "derm/train"
test = "derm/test"
[[data.modality]]
name = "mri"
train = "mri/train"
test = "mri/test"
[augment]
rotation = 10
translate = 2
brightness = [0.9, 1.1]
[train]
batch_size = 8
epochs = 2
EOF
sed -e 's/^epochs = 12/epochs = 2/' -e 's/^image_size = 64/image_size = 32/' \
    -e 's/^widths = .*/widths = "tiny"/' data/paired.toml > data/paired_small.toml

d info --preset tiny --modalities 3 --classes 3,2,4 > info.txt
d init --preset tiny -o init.safetensors
d check -c data/run.toml > check.txt
d train -c data/run.toml -o run
d evaluate run --resamples 50 --seed 1 --missing all --partners 2
d evaluate run --part val --out run/val-eval --resamples 0
d calibrate run -T 3 --seed 2
d uq run -T 3 --seed 2 --resamples 50 --alpha 0.1,0.2
d uq run -T 3 --seed 2 --resamples 0 --partners 2 --out run/uq-partners
d uq run -T 3 --seed 2 --resamples 0 --missing mri --out run/uq-missing
d predict run -i data/derm/test/round/round_0000.png data/mri/test/solid/solid_0000.png -o predict-one.json
d predict run -i derm=data/derm/test/round/round_0001.png -T 4 --seed 9 --partners 2 -o predict-partial.json
{
  echo "derm,mri,patient"
  i=0
  for f in data/derm/test/*/*.png; do
    m=$(ls data/mri/test/*/*.png | sed -n "$((i % 12 + 1))p")
    echo "$f,$m,p$((i / 3))"
    i=$((i + 1))
  done
} > cases.csv
d predict run --cases cases.csv --group-column patient -T 3 --seed 4 -o predict-cases.json
d gradcam run -n 3 --select first
d tsne run --iterations 250
d report run -o report.html
d ensemble -c data/run.toml -o ens -k 2 --epochs 1
d calibrate ens -T 2 --seed 2
d uq ens -T 2 --seed 2 --resamples 20
d predict ens -i data/derm/test/annular/annular_0000.png data/mri/test/cystic/cystic_0000.png -T 2 --seed 1 -o predict-ens.json
d report ens -o report-ens.html
d cv -c data/run.toml -o cv -k 2 --epochs 1 --resamples 20
d train -c data/paired_small.toml -o paired
d uq paired -T 2 --seed 2 --resamples 0
d volume /usr/share/mricron/templates/JHU-WhiteMatter-labels-2mm.nii.gz -o volume.json > /dev/null

# serve: one deterministic and one Monte Carlo answer over HTTP
"$drifa" serve run --port 0 > serve.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "listening on" serve.log && break; sleep 0.2; done
url=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' serve.log | head -1)
python3 - "$url" <<'EOF'
import json, sys, urllib.request, uuid
url = sys.argv[1].rstrip("/")
def post(fields, files, name):
    b = uuid.uuid4().hex
    body = b""
    for k, v in fields.items():
        body += f"--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
    for k, p in files.items():
        body += f"--{b}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{p.split('/')[-1]}\"\r\n"\
                f"Content-Type: image/png\r\n\r\n".encode() + open(p, "rb").read() + b"\r\n"
    body += f"--{b}--\r\n".encode()
    req = urllib.request.Request(url + "/v1/predict", data=body,
                                 headers={"Content-Type": f"multipart/form-data; boundary={b}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        open(name, "w").write(json.dumps(json.loads(r.read()), indent=1))
files = {"derm": "data/derm/test/round/round_0002.png", "mri": "data/mri/test/solid/solid_0002.png"}
post({"passes": "0"}, files, "serve-det.json")
post({"passes": "3", "seed": "7"}, files, "serve-mc.json")
with urllib.request.urlopen(url + "/v1/model", timeout=60) as r:
    open("serve-model.json", "w").write(json.dumps(json.loads(r.read()), indent=1))
EOF
kill $pid
wait $pid 2>/dev/null || true
trap - EXIT
echo "every command ran; outputs in $out"
