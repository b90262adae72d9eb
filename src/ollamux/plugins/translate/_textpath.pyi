from .textpath import Reframe

# The compiled helper (_textpath.c): its one function, typed once, in textpath.py.
reframe: Reframe
