"""The demo jobs behind `make demo` / `selauto demo`."""
