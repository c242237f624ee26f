// The dev environment. Names must match pipelines/vars-dev.yml.
using './main.bicep'

param environment = 'dev'
param location = 'westeurope'
param resourceGroupName = 'rg-energy-edge-dev'
param iotHubName = 'iot-energy-edge-dev'
param dpsName = 'provs-energy-edge-dev'
param registryName = 'crenergyedgedev'
param storageAccountName = 'stenergyedgedev'
param workspaceName = 'log-energy-edge-dev'
param alertEmail = 'energy-edge-ops@example.com'
param expectedConnectedDevices = 1
param minMessagesPerHour = 40
param tags = {
  costCenter: 'energy-edge'
}
