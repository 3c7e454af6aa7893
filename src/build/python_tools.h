#pragma once

// Internal to the builder: the Python helper its Python build steps run with the
// release's virtualenv interpreter (`.venv/bin/python python_tools.py <command>`).
//
//   install-requirements FILE  pip install -r FILE, leaving out the requirements the
//                              interpreter's visible distributions (system site packages
//                              included) already satisfy, so those never hit the network
//   install-project            the same for pyproject.toml's [project] dependencies, then
//                              `pip install --no-build-isolation --no-deps .` when the
//                              project declares a [build-system]
//   install-project-dependencies  install-project without installing the project itself
//   install-project-only       install-project's last part: the project alone, --no-deps
//   fingerprint                (run by /usr/bin/python3 in the app directory) one JSON line
//                              of what the dependency install depends on: interpreter,
//                              system site packages, the requirements files (with the local
//                              files they include) or pyproject.toml's dependencies; with
//                              "cacheable": false and a "reason" when it cannot be cached
//                              (editable installs, local paths, dynamic dependencies)
//   link-dependencies VENV     makes VENV's site packages visible to this venv, through a
//                              .pth file (VENV's own .pth files are honoured)
//   console-scripts            writes into the venv's bin/ the launcher pip would have
//                              generated for every console_scripts entry point of every
//                              visible distribution that has no executable there yet

namespace slipway::build_internal {

// The script's text.
const char* PythonToolsScript();

}  // namespace slipway::build_internal
