# Shared by bin/demo, bin/test and bin/bench: finds Odoo's source, builds the
# project-local virtualenv, checks PostgreSQL and writes the Odoo config.
# Source it; it does nothing on its own.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.local"
PYTHON="${PYTHON:-python3}"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-$(id -un)}"

step() { printf '\n\033[1;34m==> %s\033[0m\n' "$*"; }
die() { printf '\n\033[1;31mERROR:\033[0m %s\n' "$*" >&2; exit 1; }

# --- The Odoo series seam: everything that differs between the series the addons support
# lives here (and, inside Odoo, in azure_ad_contacts/series.py).
SUPPORTED_SERIES=(18.0 19.0)
# Documented default source of a series.
default_odoo_src() { echo "/opt/odoo-$1"; }
# The series of the Odoo source in folder $1 ("18.0"), empty when it is none.
odoo_series() {
    sed -n 's/^version_info = (\([0-9]*\), \([0-9]*\),.*/\1.\2/p' "$1/odoo/release.py" 2>/dev/null
}
# How to lay out a series' source (the die message of a missing one).
how_to_get_odoo() {
    case "$1" in
    18.0) cat <<'TXT'
  curl -LO https://nightly.odoo.com/18.0/nightly/src/odoo_18.0.latest.tar.gz
  mkdir -p ~/odoo-18.0 && tar -xzf odoo_18.0.latest.tar.gz -C ~/odoo-18.0 --strip-components=1
  export ODOO_SRC=~/odoo-18.0
or: git clone --depth 1 --branch 18.0 https://github.com/odoo/odoo ~/odoo-18.0
TXT
    ;;
    19.0) cat <<'TXT'
  git clone --depth 1 --branch 19.0 https://github.com/odoo/odoo ~/odoo-19.0
  export ODOO_SRC=~/odoo-19.0
or the nightly archive (https://nightly.odoo.com/19.0/nightly/src/odoo_19.0.latest.tar.gz), as for 18.0;
DEVELOPERS.md says how CI lays out both series.
TXT
    ;;
    esac
}
# Odoo's source: ODOO_SRC when set, else the first series found at its default place (18.0 is
# the documented default when none is).
if [ -z "${ODOO_SRC:-}" ]; then
    ODOO_SRC="$(default_odoo_src "${SUPPORTED_SERIES[0]}")"
    for _series in "${SUPPORTED_SERIES[@]}"; do
        if [ -n "$(odoo_series "$(default_odoo_src "$_series")")" ]; then
            ODOO_SRC="$(default_odoo_src "$_series")"
            break
        fi
    done
fi
ODOO_SERIES="$(odoo_series "$ODOO_SRC")"
# One virtualenv per series (Odoo's requirements and OCA's wheels differ), reused between runs.
VENV="${VENV:-$ROOT/.venv-${ODOO_SERIES:-${SUPPORTED_SERIES[0]}}}"
# Demo data is on by default on 18.0 and off on 19.0 (which takes --without-demo as a flag);
# the partner form's tab of contacts is "Contacts" on 19.0.
case "$ODOO_SERIES" in
19.0) WITH_DEMO=(--with-demo) WITHOUT_DEMO=(--without-demo) CONTACTS_TAB="Contacts" ;;
*) WITH_DEMO=() WITHOUT_DEMO=(--without-demo=all) CONTACTS_TAB="Contacts & Addresses" ;;
esac
# --- end of the series seam

check_odoo_src() {
    step "Odoo ${ODOO_SERIES:-source}: $ODOO_SRC"
    if [ ! -f "$ODOO_SRC/odoo/release.py" ] || [ ! -f "$ODOO_SRC/requirements.txt" ]; then
        die "Odoo source not found at '$ODOO_SRC'.
Get Odoo 18.0 or 19.0 and point ODOO_SRC at the folder that holds odoo/, odoo-bin and requirements.txt, e.g.:
$(how_to_get_odoo 18.0)
or, with Docker, skip all of this: docker compose up (see README.md)."
    fi
    [[ " ${SUPPORTED_SERIES[*]} " == *" $ODOO_SERIES "* ]] \
        || die "$ODOO_SRC is Odoo ${ODOO_SERIES:-of no known series}; the addons are made for Odoo ${SUPPORTED_SERIES[*]}."
}

# Runs one setup step quietly: one line on the terminal, the tool's whole output in $SETUP_LOG,
# and the log's tail when the step fails.
quietly() {
    local what="$1"; shift
    printf '    %s ... ' "$what"
    printf '\n=== %s: %s\n' "$what" "$*" >> "$SETUP_LOG"
    if "$@" >> "$SETUP_LOG" 2>&1; then
        echo "ok"
    else
        echo "failed"
        tail -n 40 "$SETUP_LOG" >&2
        die "$what failed (the whole output is in $SETUP_LOG)"
    fi
}

# Odoo itself is not installed into the virtualenv: a .pth file puts $ODOO_SRC on its path
# (the way an editable install in setuptools' "compat" mode did, without depending on that
# mode, which setuptools is removing, and without 185,000 lines of build output). The
# odoo-addon-* wheels from requirements/odoo-addons-<series>.txt are installed without their declared
# "odoo" dependency for that reason; their site-packages/odoo/ folder has no __init__.py, so it
# never shadows the source's odoo package, and Odoo finds their addons through odoo.addons.__path__.
ensure_venv() {
    check_odoo_src
    local stamp_file="$VENV/.azure_ad_contacts.stamp" stamp pip_spec="${PIP_SPEC:-pip}"
    local addons_requirements="$ROOT/requirements/odoo-addons-$ODOO_SERIES.txt"
    stamp="setup-2 $(cat "$ROOT/requirements/build-constraints.txt" "$ROOT/requirements/dev.txt" \
        "$addons_requirements" "$ODOO_SRC/requirements.txt" | sha256sum | cut -c1-16) $ODOO_SRC $pip_spec"
    if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ]; then
        step "Virtualenv up to date: $VENV"
        return
    fi
    "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 10), sys.version' 2>/dev/null \
        || die "Python 3.10+ is needed for Odoo $ODOO_SERIES (found $("$PYTHON" --version 2>&1))."
    mkdir -p "$STATE"
    SETUP_LOG="$STATE/setup.log"
    : > "$SETUP_LOG"
    step "Building the virtualenv $VENV (first run: a few minutes; log: $SETUP_LOG)"
    # A virtualenv this script built for other requirements is rebuilt from scratch.
    [ -f "$stamp_file" ] && rm -rf "$VENV"
    [ -x "$VENV/bin/python" ] || quietly "creating the virtualenv" "$PYTHON" -m venv "$VENV"
    quietly "installing $pip_spec" "$VENV/bin/python" -m pip install --upgrade "$pip_spec"
    # python-ldap needs LDAP headers and only serves auth_ldap: left out.
    grep -v '^python-ldap' "$ODOO_SRC/requirements.txt" > "$VENV/odoo-requirements.txt"
    # Build dependencies of source packages (cbor2 needs an older setuptools) are constrained by
    # PIP_BUILD_CONSTRAINT since pip 26.2 and by PIP_CONSTRAINT before; older pips ignore the former.
    PIP_CONSTRAINT="$ROOT/requirements/build-constraints.txt" \
    PIP_BUILD_CONSTRAINT="$ROOT/requirements/build-constraints.txt" \
        quietly "installing Odoo's requirements" "$VENV/bin/pip" install -r "$VENV/odoo-requirements.txt"
    local site_packages
    site_packages="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    (cd "$ODOO_SRC" && pwd) > "$site_packages/odoo-src.pth"
    printf '    putting Odoo on the path (%s) ... ok\n' "$site_packages/odoo-src.pth"
    quietly "installing msal, the test and lint tools" "$VENV/bin/pip" install -r "$ROOT/requirements/dev.txt"
    quietly "installing the OCA addons (helpdesk_mgmt, queue_job)" \
        "$VENV/bin/pip" install --no-deps -r "$addons_requirements"
    # odoo is a namespace package on 19.0 (no odoo/__init__.py): its release module tells.
    quietly "checking that odoo is the source's" "$VENV/bin/python" - "$ODOO_SRC" <<'PY'
import os, sys
import odoo.release
source = os.path.join(sys.argv[1], "odoo")
assert os.path.samefile(os.path.dirname(odoo.release.__file__), source), odoo.release.__file__
PY
    echo "$stamp" > "$stamp_file"
}

check_postgres() {
    step "PostgreSQL at $PGHOST:$PGPORT as role '$PGUSER'"
    [ "$PGUSER" != "postgres" ] || die "Odoo refuses the 'postgres' role: set PGUSER to another role."
    local out
    if ! out=$("$VENV/bin/python" - <<'EOF' 2>&1
import os, psycopg2
psycopg2.connect(dbname="postgres", host=os.environ["PGHOST"], port=os.environ["PGPORT"],
                 user=os.environ["PGUSER"], password=os.environ.get("PGPASSWORD")).close()
EOF
    ); then
        die "cannot connect to PostgreSQL at $PGHOST:$PGPORT as '$PGUSER':
$(echo "$out" | tail -n 2)
Start it (Debian: pg_ctlcluster 15 main start) or set PGHOST/PGPORT/PGUSER/PGPASSWORD;
the role needs CREATEDB (createuser --createdb $PGUSER)."
    fi
}

# Asks what the server will: can a listening socket be opened on the port? SO_REUSEADDR as Odoo
# and the fake set it, so connections of a stopped run waiting in TIME_WAIT do not count as taken.
check_port_free() {
    "$VENV/bin/python" - "$1" <<'PY' 2>/dev/null || die "port $1 is already taken (another Odoo or the demo still running?). $2"
import socket, sys
with socket.socket() as probe:
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    probe.bind(("0.0.0.0", int(sys.argv[1])))
    probe.listen()
PY
}

# The project's addons, then the source's addons/ folder where it has one (a git clone has,
# the nightly archive has not: its addons live in odoo/addons, which Odoo always adds itself).
addons_path() {
    local path="$ROOT"
    [ -d "$ODOO_SRC/addons" ] && path="$path,$ODOO_SRC/addons"
    echo "$path"
}

# Odoo config for one database; `$1` = config path, `$2` = database, `$3` = http port.
write_odoo_conf() {
    mkdir -p "$STATE/data"
    cat > "$1" <<EOF
[options]
db_host = $PGHOST
db_port = $PGPORT
db_user = $PGUSER
${PGPASSWORD:+db_password = $PGPASSWORD
}db_name = $2
dbfilter = ^$2\$
list_db = False
addons_path = $(addons_path)
data_dir = $STATE/data
http_port = $3
admin_passwd = ${ODOO_MASTER_PASSWORD:-admin}
EOF
}

odoo_bin() { "$VENV/bin/python" "$ODOO_SRC/odoo-bin" "$@"; }

# Starts the bundled fake Entra/Graph server in the background; sets FAKE_ENTRA_URL
# and REQUESTS_CA_BUNDLE (so Odoo, MSAL and requests trust its certificate).
start_fake_entra() {
    local port="$1" log="$STATE/fake_entra.log"
    check_port_free "$port" "Set FAKE_ENTRA_PORT to another port."
    mkdir -p "$STATE/certs"
    step "Starting the fake Entra ID / Graph server on https://127.0.0.1:$port"
    "$VENV/bin/python" -m fake_entra --port "$port" --cert-dir "$STATE/certs" > "$log" 2>&1 &
    FAKE_ENTRA_PID=$!
    export FAKE_ENTRA_URL="https://127.0.0.1:$port"
    export REQUESTS_CA_BUNDLE="$STATE/certs/fake-entra-bundle.pem"
    for _ in $(seq 1 50); do
        if [ -f "$REQUESTS_CA_BUNDLE" ] && "$VENV/bin/python" -c \
            "import requests,sys; requests.get(sys.argv[1] + '/_fake/health', timeout=2).raise_for_status()" \
            "$FAKE_ENTRA_URL" 2>/dev/null; then
            return
        fi
        kill -0 "$FAKE_ENTRA_PID" 2>/dev/null || die "the fake Entra server exited: $(tail -n 5 "$log")"
        sleep 0.2
    done
    die "the fake Entra server did not answer on $FAKE_ENTRA_URL: $(tail -n 5 "$log")"
}

# Drops database `$1` (if it exists) and its filestore; works without PostgreSQL's client tools.
drop_database() {
    "$VENV/bin/python" - "$1" <<'PY' || die "could not drop the database '$1' (is it in use?)"
import os, sys, psycopg2
conn = psycopg2.connect(dbname="postgres", host=os.environ["PGHOST"], port=os.environ["PGPORT"],
                        user=os.environ["PGUSER"], password=os.environ.get("PGPASSWORD"))
conn.autocommit = True
conn.cursor().execute(f'DROP DATABASE IF EXISTS "{sys.argv[1]}"')
PY
    rm -rf "$STATE/data/filestore/$1"
}
