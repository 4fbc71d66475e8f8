"""Tests of mixedmodels.genetics (a package, so that file names may repeat those of tests/)."""
