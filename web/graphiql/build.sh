#!/usr/bin/env bash
# Rebuilds web/graphiql/vendor/ from the pinned npm packages below: each file is copied byte for
# byte from the package's own prebuilt (UMD) build, with no bundler, so that building and running
# the server never needs Node or the network (the files are committed and embedded by
# src/graphiql.rs).
#
#   web/graphiql/build.sh           fetch the packages and write vendor/
#   web/graphiql/build.sh --check   fetch them and fail if vendor/ differs in any byte (CI)
#
# To move to another version: change the pins (version and the registry's integrity, from
# `npm view PACKAGE@VERSION dist.integrity`), run the script, update VENDORED.md (its test,
# `graphiql::tests`, checks the sha256 column) and the paths in src/graphiql.rs and index.html.
set -euo pipefail
cd "$(dirname "$0")"

# package version integrity file...
PINS=(
  "graphiql 4.1.2 sha512-rNlzQIAzm6i2KBXmVQWBgLvt0TloxFVB2d18bukvdsvjEuFDHsKx5IVOomL1W1o5WW+tE54+ioHb2AEKzO2cUg== graphiql.min.js graphiql.min.css LICENSE"
  "react 18.3.1 sha512-wS+hAgJShR0KhEvPJArfuPVN1+Hz1t0Y6n5jLrGQbkb4urgPE/0Rve+1kMB1v/oWgHgm4WIcV+i7F2pTVj+2iQ== umd/react.production.min.js LICENSE"
  "react-dom 18.3.1 sha512-5m4nQKp+rZRb09LNH59GM4BxTh9251/ylbKIbpe7TpGxfJ+9kv6BLkLBXIjjspbgbnIBNqlI23tRnTWT0snUIw== umd/react-dom.production.min.js LICENSE"
)

check=false
case "${1:-}" in
  --check) check=true ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/out"

for pin in "${PINS[@]}"; do
  read -r name version integrity files <<<"$pin"
  tarball=$(cd "$work" && npm pack --silent "$name@$version")
  # npm checks the registry's integrity; this pins it, so a changed registry answer fails here.
  actual="sha512-$(openssl dgst -sha512 -binary "$work/$tarball" | base64 -w0)"
  if [ "$actual" != "$integrity" ]; then
    echo "$name@$version: integrity $actual, expected $integrity" >&2
    exit 1
  fi
  mkdir -p "$work/$name" "$work/out/$name-$version"
  tar -xzf "$work/$tarball" -C "$work/$name"
  for file in $files; do
    cp "$work/$name/package/$file" "$work/out/$name-$version/$(basename "$file")"
  done
done

if $check; then
  if diff -r "$work/out" vendor >/dev/null; then
    echo "web/graphiql/vendor matches the pinned packages"
  else
    diff -rq "$work/out" vendor >&2 || true
    echo "web/graphiql/vendor differs from the pinned packages: run web/graphiql/build.sh" >&2
    exit 1
  fi
else
  rm -rf vendor
  cp -r "$work/out" vendor
  echo "wrote web/graphiql/vendor:"
  (cd vendor && sha256sum -- */*)
fi
