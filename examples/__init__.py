"""Programs built on actions_scaleset: the reference listener (`python -m examples.listener`) and the tour."""
