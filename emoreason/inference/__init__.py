"""emoreason.inference"""
