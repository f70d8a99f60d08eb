"""emoreason.train"""
