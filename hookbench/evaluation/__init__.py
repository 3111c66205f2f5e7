"""One evaluation: items and loaders, scorers, patch sets, the generation cache, settings, parts, the loop, results."""
