"""The near-duplicate audit (issue #41): the same lesion under another name, within and across a prepared set's
splits, between its train split and external sets, and between synthetic sets and the train split."""
