#!/usr/bin/env bash
# test/install/run.sh SOURCE_DIR WORK_DIR CXX_COMPILER [CXX_FLAGS]
#
# The consumer test (CTest `install_test`): what a new user does, from the README alone.
#   1. A clean copy of the source tree in WORK_DIR/asio_futures: the files git tracks (and
#      new files it does not ignore), nothing of any build tree; outside a git checkout,
#      the tree without build*/ directories.
#   2. The README's install commands, run as they are written: the shell block between the
#      markers `<!-- install-test: begin -->` and `<!-- install-test: end -->` of README.md,
#      with HOME=WORK_DIR/home and the consumer project test/install copied to
#      WORK_DIR/my_app. They configure the library with tests, benchmarks and examples off,
#      build it, install it under $HOME/.local and build my_app against it with
#      find_package(asio_futures).
#   3. Every configure those commands run also gets
#        -DCMAKE_DISABLE_FIND_PACKAGE_<P>=ON for Google Benchmark, Boost.Test, Boost.Context,
#          Boost.Fiber and Boost.Thread: a consumer's build must not need them (a
#          find_package of any of them fails the configure);
#        -DCMAKE_CXX_COMPILER / -DCMAKE_CXX_FLAGS of the build that runs this test (the same
#          compiler, and the same extra include directories, e.g. newer Asio headers laid
#          over Boost 1.81);
#        -DCMAKE_EXPORT_COMPILE_COMMANDS=ON, to check that my_app's compile commands carry
#          none of our warning, -Werror or sanitizer flags;
#        --trace-expand, to check that no configure even looked for those packages (a
#          find_package without REQUIRED would pass despite the DISABLE).
#   4. Runs my_app (it awaits a future and prints "install_test: ok").
# The README's consumer snippet (find_package, target_link_libraries) must appear word for
# word in test/install/CMakeLists.txt, so the README cannot show a usage that is not tested.
set -euo pipefail

source_dir=$(cd "$1" && pwd)
work=$2
cxx=$3
cxx_flags=${4:-}

fail() {
  echo "install_test: FAIL: $*" >&2
  exit 1
}
step() { echo "--- install_test: $*"; }

rm -rf "$work"
mkdir -p "$work/home" "$work/asio_futures"

step "a clean copy of $source_dir"
if git -C "$source_dir" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # Tracked files as they are in the work tree (deleted ones skipped), plus untracked files
  # that are not ignored: what the next commit would hold if everything were added.
  (cd "$source_dir" &&
    git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [[ -e $f ]] && printf '%s\0' "$f"; done |
      tar --null -T - -cf -) | tar -xf - -C "$work/asio_futures"
else
  tar -C "$source_dir" --exclude='./build*' --exclude='./.git' -cf - . |
    tar -xf - -C "$work/asio_futures"
fi
[[ -f $work/asio_futures/CMakeLists.txt ]] || fail "the copy has no CMakeLists.txt"
cp -R "$source_dir/test/install" "$work/my_app"

readme=$source_dir/README.md
commands=$(sed -n '/<!-- install-test: begin -->/,/<!-- install-test: end -->/p' "$readme" |
  sed '/^<!--/d; /^```/d')
[[ -n $commands ]] || fail "README.md has no install-test block"

step "the README's consumer snippet is what test/install/CMakeLists.txt does"
snippet=$(sed -n '/<!-- install-test: consumer -->/,/^```$/p' "$readme" | sed '/^<!--/d; /^```/d')
[[ -n $snippet ]] || fail "README.md has no install-test consumer snippet"
while IFS= read -r line; do
  [[ -z $line || $line == \#* ]] && continue
  grep -qxF -- "$line" "$source_dir/test/install/CMakeLists.txt" ||
    fail "README line not in test/install/CMakeLists.txt: $line"
done <<<"$snippet"

# `cmake` as the README's commands call it, with our additions to every configure.
cmake_exe=$(command -v cmake)
disabled=(benchmark boost_unit_test_framework boost_context boost_fiber boost_thread)
configures=0
cmake() {
  case " $* " in
    *" --build "* | *" --install "* | *" -E "* | *" -P "*) "$cmake_exe" "$@" ;;
    *)
      configures=$((configures + 1))
      local extra=(-DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_CXX_FLAGS="$cxx_flags"
        -DCMAKE_EXPORT_COMPILE_COMMANDS=ON --no-warn-unused-cli
        --trace-expand --trace-redirect="$work/trace-$configures.txt")
      local p
      for p in "${disabled[@]}"; do extra+=("-DCMAKE_DISABLE_FIND_PACKAGE_$p=ON"); done
      "$cmake_exe" "$@" "${extra[@]}"
      ;;
  esac
}

step "the README's install commands"
printf '%s\n' "$commands"
cd "$work"
export HOME=$work/home
eval "$commands" || fail "the README's install commands failed"

step "checks"
# A find_package that is not REQUIRED would pass the configure even when disabled: the
# traces show every call.
((configures == 2)) || fail "expected 2 configures (library, my_app), saw $configures"
pattern="find_package\\(($(IFS='|'; echo "${disabled[*]}"))[ )]"
if grep -hE "$pattern" "$work"/trace-*.txt; then
  fail "a configure looked for a package a consumer does not need (above)"
fi
echo "install_test: no configure looked for ${disabled[*]}"
consumer=$(find "$work" -path "$work/asio_futures" -prune -o -type f -name my_app \
  -perm -u+x -print -quit)
[[ -n $consumer ]] || fail "no my_app was built"
[[ -f $HOME/.local/lib/cmake/asio_futures/asio_futuresConfig.cmake ]] ||
  [[ -n $(find "$HOME/.local" -name asio_futuresConfig.cmake -print -quit) ]] ||
  fail "nothing installed under \$HOME/.local"
commands_json=$(dirname "$consumer")/compile_commands.json
[[ -f $commands_json ]] || fail "no $commands_json"
if grep -Eo -- '-Werror[^ "]*|-fsanitize[^ "]*|-W(all|extra|pedantic)\b' "$commands_json"; then
  fail "the consumer's compile commands carry our build flags (above)"
fi
echo "install_test: the consumer's compile commands carry no -W/-Werror/-fsanitize flag"

step "run $consumer"
"$consumer"
