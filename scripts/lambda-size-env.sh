# Sourced by scripts/sam-build.sh and bench/run.sh: the settings of Cargo.toml's
# `[profile.lambda-size]` for builds that can only say `--release`. `sam build`'s cargo-lambda
# builder always runs `cargo lambda build --release` and passes no other flag from the template,
# so the deployed bootstraps get the size profile through cargo's profile environment variables,
# which take precedence over the manifest's `[profile.release]`. The packages kept at
# `opt-level = 3` (hashing, JSON, sparkbridge's own code) are `[profile.release.package.*]`
# entries, which these variables leave alone. Keep the four values equal to the profile's.
# A value already set in the environment wins: CI checks the build with LTO off
# (CARGO_PROFILE_RELEASE_LTO=off, .ci/run), and then one codegen unit would only slow it down.
export CARGO_PROFILE_RELEASE_OPT_LEVEL="${CARGO_PROFILE_RELEASE_OPT_LEVEL:-s}"
export CARGO_PROFILE_RELEASE_PANIC="${CARGO_PROFILE_RELEASE_PANIC:-abort}"
case "${CARGO_PROFILE_RELEASE_LTO:-}" in
  off | false) ;;
  *) export CARGO_PROFILE_RELEASE_LTO="${CARGO_PROFILE_RELEASE_LTO:-fat}"
     export CARGO_PROFILE_RELEASE_CODEGEN_UNITS="${CARGO_PROFILE_RELEASE_CODEGEN_UNITS:-1}" ;;
esac
