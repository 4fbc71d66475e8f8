"""Tests of mixedmodels.genio (a package, so that file names may repeat those of tests/)."""
