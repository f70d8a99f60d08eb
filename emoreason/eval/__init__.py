"""emoreason.eval"""
