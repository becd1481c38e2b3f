"""The tests: tests/latentsearch/ (the library) and tests/arc/ (the lpn-arc application)."""
