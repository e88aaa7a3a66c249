"""`gan-aug analyze`: checks of finished work that a report does not make itself: final-epoch weights instead of
the best-val ones (last_epoch), one arm under two recipes (recipes), and a generator's class fidelity and
variety (generators). Each only reads what it is given."""
