"""OpenFeature Remote Evaluation Protocol (OFREP) endpoints over the native flags."""
